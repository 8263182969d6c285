// DashboardPages owns how the daemon's web page looks: the Mustache templates (every value escaped unless
// a template says otherwise), the page models they render, its style sheet and the one small script that
// follows a build's log. Nothing is loaded from elsewhere: the page works offline.

import Foundation
import Mustache

/// Renders the dashboard's pages. Templates are part of the program, so a template that does not parse
/// is a programming error a unit test catches; rendering then reports it instead of crashing the daemon.
enum DashboardPages {
    struct Layout {
        var title: String
        var body: String
        var version: String
        var csrf: String?
        var followsLog: Bool
    }

    struct SignIn {
        var message: String?
    }

    struct ProjectList {
        struct Row {
            var id: Int64
            var name: String
            var version: String
            var status: String
            var statusText: String
            var queue: String
            var started: String
            var took: String
            var updated: String
        }
        var projects: [Row]
        var running: Int
        var jobs: Int
        var waiting: [Row]
        var load: String
        var memory: String
        var cpus: Int
    }

    struct ProjectPage {
        struct Stage {
            var name: String
            var seconds: String
            var took: String
            var maximum: String
            var finished: Bool
            var cached: Bool
            var note: String?
        }
        struct Check {
            var name: String
            var passed: Bool
        }
        struct Package {
            var name: String
            var version: String
            var architecture: String
            var source: String
        }
        struct File {
            var path: String
            var href: String
            var size: String
        }
        var id: Int64
        var name: String
        var version: String
        var status: String
        var statusText: String
        var reason: String?
        var created: String
        var started: String
        var finished: String
        var took: String
        var running: Bool
        var stages: [Stage]
        var detail: String?
        var warnings: [String]
        var logEvents: String
        var logCut: String?
        var hasLog: Bool
        var checks: [Check]
        var validation: String?
        var filter: String
        var packageSummary: String?
        var packages: [Package]
        var files: [File]
    }

    /// The stages part of a project page on its own.
    struct StageSection {
        var stages: [ProjectPage.Stage]
        var detail: String?
        var warnings: [String]
    }

    struct Confirm {
        var id: Int64
        var name: String
        var action: String
        var verb: String
        var explanation: String
        var csrf: String
        var danger: Bool
    }

    struct Problem {
        var title: String
        var message: String
        var back: String
    }

    static let library: Result<MustacheLibrary, any Error> = Result {
        var library = MustacheLibrary()
        for (name, text) in templates { try library.register(text, named: name) }
        return library
    }

    static func render(_ object: Any, _ template: String) -> String {
        switch library {
        case .success(let library):
            return library.render(object, withTemplate: template) ?? "<p>the page template \(template) is missing</p>"
        case .failure(let error):
            return "<p>the page templates do not parse: \(escape("\(error)"))</p>"
        }
    }

    /// A whole page: `body` (already rendered, escaped by its template) inside the layout.
    static func page(title: String, body: String, version: String, csrf: String?, followsLog: Bool = false) -> String {
        render(Layout(title: title, body: body, version: version, csrf: csrf, followsLog: followsLog), "layout")
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
            .replacingOccurrences(of: "'", with: "&#39;")
    }

    static let templates: [String: String] = [
        // The stages of a build, its current step and warnings: part of the project page, and on their own
        // (GET /ui/projects/ID/stages) for the page's script to refresh while a build runs.
        "stages": """
        <h2>Stages</h2>
        {{#stages}}{{#first()}}<table class="stages">{{/first()}}
        <tr><td class="stage-name">{{name}}</td>
        <td class="stage-bar">{{#finished}}<meter min="0" max="{{maximum}}" value="{{seconds}}" title="{{took}}">{{took}}</meter>{{/finished}}{{^finished}}<span class="running">running</span>{{/finished}}</td>
        <td class="stage-time">{{took}}{{#cached}} <span class="cached">cached</span>{{/cached}}{{#note}} <span class="note">{{note}}</span>{{/note}}</td></tr>
        {{#last()}}</table>{{/last()}}{{/stages}}
        {{^stages}}<p>No stages recorded.</p>{{/stages}}
        {{#detail}}<p class="detail">Now: {{detail}}</p>{{/detail}}
        {{#warnings}}{{#first()}}<h3>Warnings</h3><ul class="warnings">{{/first()}}<li>{{.}}</li>{{#last()}}</ul>{{/last()}}{{/warnings}}
        """,
        "layout": """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>{{title}} · Havel</title>
        <link rel="stylesheet" href="/ui/static/style.css">
        </head>
        <body>
        <header>
        <a class="brand" href="/ui/">Havel</a>
        {{#csrf}}<form method="post" action="/ui/signout" class="signout"><input type="hidden" name="csrf" value="{{csrf}}"><button type="submit">Sign out</button></form>{{/csrf}}
        </header>
        <main>
        {{{body}}}
        </main>
        <footer>havel {{version}}</footer>
        {{#followsLog}}<script src="/ui/static/log.js"></script>{{/followsLog}}
        </body>
        </html>
        """,
        "signin": """
        <h1>Sign in</h1>
        {{#message}}<p class="error" id="message">{{message}}</p>{{/message}}
        <form method="post" action="/ui/signin" class="signin">
        <label for="token">The daemon's API token</label>
        <input type="password" id="token" name="token" autocomplete="current-password" autofocus required>
        <button type="submit">Sign in</button>
        </form>
        <p class="hint">The initvm keeps it in its directory as <code>api-token</code>; a daemon started by hand reads it from <code>--token-file</code>.</p>
        """,
        "projects": """
        <h1>Projects</h1>
        <section class="machine" id="machine">
        <h2>Build machine</h2>
        <dl>
        <dt>Builds running</dt><dd id="running">{{running}} of {{jobs}}</dd>
        <dt>Load (1, 5, 15 min)</dt><dd id="load">{{load}}</dd>
        <dt>Memory available</dt><dd id="memory">{{memory}}</dd>
        <dt>CPUs</dt><dd>{{cpus}}</dd>
        </dl>
        <h3>Queue</h3>
        {{#waiting}}{{#first()}}<ol id="queue">{{/first()}}<li><a href="/ui/projects/{{id}}">{{name}}</a> ({{queue}})</li>{{#last()}}</ol>{{/last()}}{{/waiting}}
        {{^waiting}}<p id="queue">No build is waiting.</p>{{/waiting}}
        </section>
        <table id="projects">
        <thead><tr><th>#</th><th>Project</th><th>Version</th><th>Status</th><th>Queue</th><th>Build started</th><th>Took</th><th>Changed</th></tr></thead>
        <tbody>
        {{#projects}}<tr class="status-{{status}}"><td><a href="/ui/projects/{{id}}">{{id}}</a></td><td><a href="/ui/projects/{{id}}">{{name}}</a></td><td>{{version}}</td><td><span class="badge status-{{status}}">{{statusText}}</span></td><td>{{queue}}</td><td>{{started}}</td><td>{{took}}</td><td>{{updated}}</td></tr>
        {{/projects}}
        {{^projects}}<tr><td colspan="8">No projects yet: <code>havel initvm submit FILE</code> makes one.</td></tr>{{/projects}}
        </tbody>
        </table>
        """,
        "project": """
        <p class="crumbs"><a href="/ui/">Projects</a> / {{id}}</p>
        <h1>{{name}} <span class="version">{{version}}</span></h1>
        <p><span class="badge status-{{status}}" id="status">{{statusText}}</span></p>
        {{#reason}}<p class="reason" id="reason">{{reason}}</p>{{/reason}}
        <dl class="times">
        <dt>Created</dt><dd>{{created}}</dd>
        <dt>Build started</dt><dd>{{started}}</dd>
        <dt>Build ended</dt><dd>{{finished}}</dd>
        <dt>Took</dt><dd>{{took}}</dd>
        </dl>
        <nav class="actions">
        <a class="button" id="build" href="/ui/projects/{{id}}/confirm/build">Build</a>
        <a class="button" id="cancel" href="/ui/projects/{{id}}/confirm/cancel">Cancel</a>
        <a class="button" id="reset" href="/ui/projects/{{id}}/confirm/reset">Reset</a>
        <a class="button danger" id="delete" href="/ui/projects/{{id}}/confirm/delete">Delete</a>
        </nav>
        <section id="stages" data-refresh="/ui/projects/{{id}}/stages">
        {{> stages}}
        </section>
        <section id="log-section">
        <h2>Log</h2>
        {{#logCut}}<p class="hint">{{logCut}}</p>{{/logCut}}
        {{#hasLog}}<pre id="log" data-events="{{logEvents}}" data-running="{{running}}"></pre>
        <p><a href="/ui/projects/{{id}}/files/log.txt" download>log.txt</a></p>{{/hasLog}}
        {{^hasLog}}<p>No build log yet.</p>{{/hasLog}}
        </section>
        <section id="checks">
        <h2>Checks</h2>
        {{#checks}}{{#first()}}<ul class="checks">{{/first()}}<li class="{{#passed}}passed{{/passed}}{{^passed}}failed{{/passed}}">{{name}}: {{#passed}}passed{{/passed}}{{^passed}}failed{{/passed}}</li>{{#last()}}</ul>{{/last()}}{{/checks}}
        {{^checks}}<p>No boot checks ran.</p>{{/checks}}
        <h3>Validation</h3>
        {{#validation}}<pre class="validation">{{validation}}</pre>{{/validation}}
        {{^validation}}<p>No validation report.</p>{{/validation}}
        </section>
        <section id="packages">
        <h2>Packages</h2>
        <form method="get" action="/ui/projects/{{id}}" class="filter">
        <label for="filter">Filter</label> <input type="search" id="filter" name="filter" value="{{filter}}" placeholder="name or source">
        <button type="submit">Filter</button>
        </form>
        {{#packageSummary}}<p id="package-summary">{{packageSummary}}</p>{{/packageSummary}}
        {{#packages}}{{#first()}}<table class="packages"><thead><tr><th>Package</th><th>Version</th><th>Arch</th><th>Source</th></tr></thead><tbody>{{/first()}}
        <tr><td>{{name}}</td><td>{{version}}</td><td>{{architecture}}</td><td>{{source}}</td></tr>
        {{#last()}}</tbody></table>{{/last()}}{{/packages}}
        </section>
        <section id="files">
        <h2>Files</h2>
        {{#files}}{{#first()}}<ul class="files">{{/first()}}<li><a href="/ui/projects/{{id}}/files/{{href}}" download>{{path}}</a> <span class="size">{{size}}</span></li>{{#last()}}</ul>{{/last()}}{{/files}}
        {{^files}}<p>No result files.</p>{{/files}}
        </section>
        """,
        "confirm": """
        <p class="crumbs"><a href="/ui/">Projects</a> / <a href="/ui/projects/{{id}}">{{id}}</a></p>
        <h1>{{verb}} {{name}}?</h1>
        <p>{{explanation}}</p>
        <form method="post" action="/ui/projects/{{id}}/{{action}}" class="confirm">
        <input type="hidden" name="csrf" value="{{csrf}}">
        <button type="submit" id="confirm" class="{{#danger}}danger{{/danger}}">{{verb}}</button>
        <a href="/ui/projects/{{id}}">Back</a>
        </form>
        """,
        "problem": """
        <h1>{{title}}</h1>
        <p class="error" id="problem">{{message}}</p>
        <p><a href="{{back}}">Back</a></p>
        """,
    ]

    static let styleSheet = """
    :root { --fg: #1d2327; --muted: #5f6b73; --line: #d5dbe0; --accent: #1f5f8b; --ok: #2e7d32; --bad: #b3261e; --busy: #a66300; }
    * { box-sizing: border-box; }
    body { margin: 0; font: 15px/1.45 system-ui, sans-serif; color: var(--fg); background: #f7f8fa; }
    header { display: flex; align-items: center; justify-content: space-between; padding: .6em 1.2em; background: #20313f; }
    header a.brand { color: #fff; font-weight: 700; text-decoration: none; letter-spacing: .05em; }
    header button { background: transparent; color: #fff; border: 1px solid #fff6; }
    main { max-width: 72em; margin: 0 auto; padding: 1em 1.2em 3em; }
    footer { text-align: center; color: var(--muted); font-size: .85em; padding: 1em; }
    h1 { font-size: 1.6em; margin: .3em 0; } h1 .version { color: var(--muted); font-weight: 400; font-size: .7em; }
    h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid var(--line); }
    a { color: var(--accent); }
    table { border-collapse: collapse; width: 100%; background: #fff; }
    th, td { text-align: left; padding: .35em .6em; border-bottom: 1px solid var(--line); vertical-align: top; }
    th { font-weight: 600; color: var(--muted); font-size: .9em; }
    dl { display: grid; grid-template-columns: max-content auto; gap: .2em 1em; }
    dt { color: var(--muted); } dd { margin: 0; }
    .badge { display: inline-block; padding: .05em .6em; border-radius: 1em; font-size: .9em; background: #e4e8ec; }
    .status-build_done { background: #dff0e0; color: var(--ok); }
    .status-build_failed { background: #fbe3e1; color: var(--bad); }
    .status-busy { background: #fdf0d9; color: var(--busy); }
    .status-cancelled { background: #eceff1; color: var(--muted); }
    tr[class^="status-"] { background: #fff; }
    .reason, .error { color: var(--bad); white-space: pre-wrap; }
    .hint, .crumbs, .size, .note, .detail { color: var(--muted); }
    .actions { display: flex; gap: .6em; margin: 1em 0; }
    .button, button { display: inline-block; padding: .35em 1em; border: 1px solid var(--accent); border-radius: .3em;
                      background: #fff; color: var(--accent); text-decoration: none; font: inherit; cursor: pointer; }
    .danger { border-color: var(--bad); color: var(--bad); }
    button[type="submit"].danger { background: var(--bad); color: #fff; }
    .stages td { border: none; padding: .15em .6em; } .stage-name { width: 14em; }
    .stage-bar { width: 50%; } meter { width: 100%; height: 1.1em; }
    .running { color: var(--busy); font-weight: 600; } .cached { color: var(--ok); font-size: .85em; }
    pre { background: #101820; color: #e0e6eb; padding: .8em; overflow: auto; font-size: 13px; line-height: 1.35; }
    #log { height: 28em; white-space: pre-wrap; word-break: break-all; }
    pre.validation { background: #fff; color: var(--fg); border: 1px solid var(--line); max-height: 20em; }
    .checks .passed { color: var(--ok); } .checks .failed { color: var(--bad); }
    .packages { font-size: .9em; } .filter { margin: .5em 0; }
    .signin { display: grid; gap: .5em; max-width: 24em; } .signin input { padding: .4em; font: inherit; }
    .signout { margin: 0; } .machine dl { margin-bottom: .4em; }
    """

    /// Follows the build log over server-sent events: a line an event, appended as it comes; at the end
    /// event the page is loaded again when it showed a running build (so the stages and files appear).
    static let logScript = """
    "use strict";
    (function () {
      var log = document.getElementById("log");
      if (!log || !window.EventSource) { return; }
      var status = document.getElementById("status");
      var stages = document.getElementById("stages");
      var running = log.getAttribute("data-running") === "true";
      var source = new EventSource(log.getAttribute("data-events"));
      var maximumLines = 20000;
      // While the build runs, the stages, the current step and the warnings are fetched again every 2 s.
      var refresh = null;
      if (running && stages && window.fetch) {
        refresh = window.setInterval(function () {
          fetch(stages.getAttribute("data-refresh"), { credentials: "same-origin", cache: "no-store" })
            .then(function (response) { return response.ok ? response.text() : null; })
            .then(function (html) { if (html !== null && refresh !== null) { stages.innerHTML = html; } })
            .catch(function () {});
        }, 2000);
      }
      source.onmessage = function (event) {
        var follow = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
        log.appendChild(document.createTextNode(event.data + "\\n"));
        while (log.childNodes.length > maximumLines) { log.removeChild(log.firstChild); }
        if (follow) { log.scrollTop = log.scrollHeight; }
      };
      source.addEventListener("end", function (event) {
        source.close();
        if (refresh !== null) { window.clearInterval(refresh); refresh = null; }
        log.setAttribute("data-ended", event.data);
        if (running) {
          if (status) { status.textContent = "ended (" + event.data.replace(/_/g, " ") + "), loading the results"; }
          window.setTimeout(function () { window.location.reload(); }, 1500);
        }
      });
    })();
    """
}
