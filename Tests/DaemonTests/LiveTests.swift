import Build
import DaemonAPI
import DaemonClient
import Foundation
import HavelCore
import Testing
@testable import Daemon

/// The daemon served on 127.0.0.1 and driven by DaemonClient, as `havel control` drives it.
@Suite struct LiveTests {
    @Test func tokenAndPathsAreEnforcedOverTheWire() async throws {
        let data = try DaemonFixture.temporaryDirectory("live")
        defer { try? FileManager.default.removeItem(atPath: data) }
        let daemon = try await HavelDaemon(configuration: DaemonFixture.configuration(data: data))
        try await DaemonFixture.withLiveDaemon(daemon) { client, port in
            let anonymous = DaemonClient(baseURL: "http://127.0.0.1:\(port)", token: nil)
            let health = try await anonymous.health()
            #expect(health.status == "ok")
            // Without a token: only the kind of confinement, no cgroup path or reason.
            #expect(health.buildConfinement == (daemon.cgroups.hierarchy == nil ? HealthResponse.processGroupConfinement
                                                                               : HealthResponse.cgroupConfinement))
            do throws(HavelError) {
                _ = try await anonymous.projects()
                Issue.record("listing without a token succeeded")
            } catch {
                #expect(error.code == .unauthorized)
                #expect(error.message.contains("token"))
            }
            let wrong = DaemonClient(baseURL: "http://127.0.0.1:\(port)", token: "nope")
            await #expect(throws: HavelError.self) { _ = try await wrong.createProject() }

            let project = try await client.createProject()
            let uploaded = try await client.upload(project.id, xml: DaemonFixture.project(name: "live"))
            #expect(uploaded.status == .needsBuild)
            let build = data + "/projects/\(project.id)/build"
            try FileManager.default.createDirectory(atPath: build, withIntermediateDirectories: true)
            try "hello".write(toFile: build + "/report.txt", atomically: true, encoding: .utf8)
            let target = data + "/got.txt"
            #expect(try await client.download(project.id, path: "report.txt", to: target) == 5)
            #expect(try String(contentsOfFile: target, encoding: .utf8) == "hello")
            for path in ["../source.xml", "../../havel.sqlite", "/etc/passwd", "a/../../source.xml"] {
                do throws(HavelError) {
                    try await client.download(project.id, path: path, to: data + "/escaped")
                    Issue.record("\(path) was served")
                } catch {
                    #expect(error.code == .invalidArgument, "\(path): \(error)")
                }
            }
            #expect(!FileManager.default.fileExists(atPath: data + "/escaped"))
            do throws(HavelError) {
                _ = try await client.build(project.id + 100)
                Issue.record("building a missing project succeeded")
            } catch {
                #expect(error.code == .notFound)
                #expect(error.message == "project \(project.id + 100) does not exist")
            }
            try await client.deleteProject(project.id)
            #expect(try await client.projects().isEmpty)
        }
    }

    /// What `havel control build --allow-unsupported` and `havel initvm submit --allow-unsupported` send: the
    /// refusal comes back with the line of the not-built item; the allowed build gets past loading.
    @Test func allowUnsupportedReachesTheDaemon() async throws {
        let data = try DaemonFixture.temporaryDirectory("live-unsupported")
        defer { try? FileManager.default.removeItem(atPath: data) }
        let daemon = try await HavelDaemon(configuration: DaemonFixture.configuration(data: data, mirror: "http://127.0.0.1:9/debian"))
        try await DaemonFixture.withLiveDaemon(daemon) { client, _ in
            let project = try await client.createProject()
            let xml = DaemonFixture.project(name: "tight").replacingOccurrences(of: "</pkg-list>", with: "</pkg-list>\n    <images><passno>1</passno></images>")
            _ = try await client.upload(project.id, xml: xml)
            do throws(HavelError) {
                _ = try await client.build(project.id)
                Issue.record("the build of a project using images/passno was queued")
            } catch {
                #expect(error.code == .invalidArgument)
                #expect(error.description.contains("--allow-unsupported"), "\(error)")
                #expect(error.diagnostics.contains { $0.description.contains("passno") }, "\(error.diagnostics)")
            }
            let queued = try await client.build(project.id, BuildRequest(allowUnsupported: true))
            #expect(queued.status == .busy)
            await daemon.queue.waitUntilIdle(project.id)
            let ended = try await client.project(project.id)
            #expect(ended.status == .buildFailed)
            #expect(ended.reason?.contains("Havel does not build") == false, "\(ended.reason ?? "")")
        }
    }

    @Test(.enabled(if: BuildHost.available, BuildHost.skipReason), .timeLimit(.minutes(15)))
    func twoProjectsSubmittedTogetherBothBuild() async throws {
        let data = try DaemonFixture.temporaryDirectory("two")
        let daemon = try await HavelDaemon(configuration: DaemonFixture.configuration(data: data, jobs: 2))
        do {
            try await DaemonFixture.withLiveDaemon(daemon) { client, _ in
                let a = try await client.createProject()
                let b = try await client.createProject()
                _ = try await client.upload(a.id, xml: DaemonFixture.project(name: "daemon-a"))
                _ = try await client.upload(b.id, xml: DaemonFixture.project(name: "daemon-b", packages: ["netbase", "less"]))
                let queuedA = try await client.build(a.id)
                let queuedB = try await client.build(b.id)
                #expect(queuedA.status == .busy && queuedB.status == .busy)
                // Two jobs: both run at once, neither waits.
                #expect(try await client.project(a.id).queuePosition == 0)
                #expect(try await client.project(b.id).queuePosition == 0)
                await #expect(throws: HavelError.self) { _ = try await client.build(a.id) }

                var lines: [String] = []
                for try await line in client.followLog(a.id) { lines.append(line) }
                #expect(lines.contains { $0.contains("build done") }, "\(lines.suffix(20).joined(separator: "\n"))")
                let doneA = try await client.waitForBuild(a.id)
                let doneB = try await client.waitForBuild(b.id)
                #expect(doneA.status == .buildDone, "\(doneA.reason ?? "")")
                #expect(doneB.status == .buildDone, "\(doneB.reason ?? "")")
                #expect(doneA.buildStarted != nil && doneA.buildFinished != nil)
                // The daemon kept each build's stages from its log records, each finished with its time.
                for done in [doneA, doneB] {
                    let progress = try #require(done.progress)
                    #expect(progress.stages.map(\.name) == ["check host", "probe mirror", "install packages", "configure target", "project file on the device",
                                                            "initramfs", "finetuning", "device files", "reports and packing", "sbom"], "\(progress)")
                    #expect(progress.stages.allSatisfy { $0.seconds != nil } && progress.runningStage == nil)
                    #expect(progress.packagesDone > 0 || progress.stages.contains { $0.name == "install packages" && $0.cached })
                }

                for (project, name) in [(a, "daemon-a"), (b, "daemon-b")] {
                    let files = try await client.files(project.id)
                    #expect(files.contains { $0.path == "\(name)-1.0-rootfs.tar.zst" && $0.size > 0 }, "\(files)")
                    #expect(files.contains { $0.path == "source.xml" })
                    #expect(!files.contains { $0.path.hasPrefix("rootfs/") })
                    let source = data + "/\(name)-source.xml"
                    try await client.download(project.id, path: "source.xml", to: source)
                    #expect(try String(contentsOfFile: source, encoding: .utf8).contains("netbase"))
                }
                #expect(try await client.log(b.id).contains("build done"))
                // Reset removes the results and allows a new build.
                #expect(try await client.reset(a.id).status == .needsBuild)
                #expect(try await client.project(a.id).progress == nil)
                #expect(try await client.files(a.id).isEmpty)
            }
        } catch {
            await DaemonFixture.remove(data)
            throw error
        }
        await DaemonFixture.remove(data)
    }
}
