#!/usr/bin/env python3
"""Drives the daemon's web page in headless chromium (Playwright pointed at Debian's browser).

Run by DashboardBrowserTests with a live daemon that holds one uploaded, never built project. Signs in,
builds the project from its page, watches the log grow while the build runs, downloads source.xml and
compares its bytes with the file on disk, filters the package list, and checks that a request without
the session cookie, one with a forged CSRF token and one from another origin are refused, and that another
host name (DNS rebinding) is refused. Screenshots go to --output. Prints one line per check; exits 1 at
the first failed one.
"""
import argparse
import http.client
import pathlib
import sys
import time
import urllib.parse

from playwright.sync_api import sync_playwright


def check(condition, what):
    if not condition:
        print(f"FAILED: {what}", flush=True)
        sys.exit(1)
    print(f"ok: {what}", flush=True)


def log_lines(page):
    return page.evaluate("() => { const l = document.getElementById('log'); return l ? l.childNodes.length : -1; }")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--token-file", required=True)
    parser.add_argument("--project", type=int, required=True)
    parser.add_argument("--build-directory", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--build-timeout", type=float, default=1800)
    args = parser.parse_args()
    url, pid = args.url.rstrip("/"), args.project
    token = pathlib.Path(args.token_file).read_text().strip()
    output = pathlib.Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    project_page = f"{url}/ui/projects/{pid}"

    with sync_playwright() as playwright:
        # As root chromium needs --no-sandbox; the page is local and ours.
        browser = playwright.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
        context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
        # A busy machine answers slowly: generous waits, ended early by the events waited for.
        context.set_default_timeout(120_000)
        page = context.new_page()

        page.goto(url + "/")
        check(page.url == url + "/ui/signin", f"a visit without a session leads to the sign-in page ({page.url})")
        page.fill("#token", "not-the-token")
        page.click("form.signin button[type=submit]")
        check("not the daemon's API token" in page.inner_text("#message"), "a wrong token is refused on the page")
        page.fill("#token", token)
        page.click("form.signin button[type=submit]")
        page.wait_for_url(url + "/ui/")
        session = [c for c in context.cookies() if c["name"] == "havel_session"]
        check(len(session) == 1 and session[0]["httpOnly"] and session[0]["sameSite"] == "Strict" and session[0]["expires"] > time.time(),
              f"signed in: the session cookie is HttpOnly, SameSite=Strict and expires ({session})")
        check("havel_session" not in page.evaluate("document.cookie"), "the page's script cannot read the session cookie")
        check(page.locator(f"#projects a[href='/ui/projects/{pid}']").count() == 2, "the project list shows the project")
        check("of" in page.inner_text("#running") and page.inner_text("#load") != "", "the list shows the machine's builds and load")
        page.screenshot(path=str(output / "1-project-list.png"), full_page=True)

        page.click(f"#projects a[href='/ui/projects/{pid}'] >> nth=1")
        page.wait_for_url(project_page)
        check("not built" in page.inner_text("#status"), "the project page shows a project not built yet")
        page.click("#build")
        page.wait_for_url(project_page + "/confirm/build")
        page.screenshot(path=str(output / "2-confirm-build.png"), full_page=True)
        page.click("#confirm")
        page.wait_for_url(project_page)
        check("building" in page.inner_text("#status"), "the build is queued from the page: " + page.inner_text("#status"))
        stages_at_load = page.inner_html("#stages")

        # The log follows the running build: lines arrive on their own, without a reload.
        page.wait_for_function("() => document.getElementById('log').childNodes.length >= 3", timeout=args.build_timeout * 1000)
        first = log_lines(page)
        marker = page.evaluate("() => { window.havelTestMarker = 1; return 1; }")
        page.wait_for_function(f"() => document.getElementById('log').childNodes.length > {first} + 5 "
                               "|| document.getElementById('log').hasAttribute('data-ended')", timeout=args.build_timeout * 1000)
        grown = log_lines(page)
        same_document = page.evaluate("() => window.havelTestMarker === 1")
        check(same_document and marker == 1, "no reload happened while the log grew")
        check(grown > first + 5, f"the log grew from {first} to {grown} lines while the build ran")
        # The stages part follows too (fetched again every 2 s): it changes in the same document.
        page.wait_for_function("(initial) => document.getElementById('stages').innerHTML !== initial "
                               "|| document.getElementById('log').hasAttribute('data-ended')", arg=stages_at_load,
                               timeout=args.build_timeout * 1000)
        stages_now = page.inner_html("#stages")
        check(page.evaluate("() => window.havelTestMarker === 1") and stages_now != stages_at_load,
              "the stages and the current step were updated without a reload while the build ran")
        page.screenshot(path=str(output / "3-running-build.png"), full_page=True)

        # When the build ends the page loads itself again with the results.
        page.wait_for_selector("#files a[href$='/files/source.xml']", timeout=args.build_timeout * 1000)
        status = page.inner_text("#status")
        check(status == "built", f"the build ended as built ({status}; reason: "
              f"{page.inner_text('#reason') if page.locator('#reason').count() else '-'})")
        check(page.locator("#stages meter").count() >= 3, "the stage bar chart has a bar per finished stage")
        page.screenshot(path=str(output / "4-built-project.png"), full_page=True)

        with page.expect_download() as download:
            page.click("#files a[href$='/files/source.xml']")
        got = pathlib.Path(download.value.path()).read_bytes()
        expected = (pathlib.Path(args.build_directory) / "source.xml").read_bytes()
        check(got == expected and len(got) > 1000, f"the downloaded source.xml is the build's, byte for byte ({len(got)} bytes)")

        page.fill("#filter", "netbase")
        page.click("form.filter button[type=submit]")
        rows = page.locator("table.packages tbody tr")
        check(rows.count() >= 1 and all("netbase" in rows.nth(i).inner_text() for i in range(rows.count())),
              f"the package filter shows only matching packages ({rows.count()}; {page.inner_text('#package-summary')})")

        csrf = page.get_attribute("input[name=csrf]", "value")
        check(csrf is not None and len(csrf) == 64, "the page carries a CSRF token")
        anonymous = playwright.request.new_context()
        answer = anonymous.get(f"{project_page}/files/source.xml", max_redirects=0)
        check(answer.status == 401, f"a download without the session cookie is refused ({answer.status})")
        answer = anonymous.post(f"{project_page}/reset", form={"csrf": csrf}, headers={"Origin": url}, max_redirects=0)
        check(answer.status == 403, f"a reset without the session cookie is refused ({answer.status})")
        answer = context.request.post(f"{project_page}/reset", form={"csrf": "0" * 64}, headers={"Origin": url}, max_redirects=0)
        check(answer.status == 403 and "CSRF" in answer.text(), f"a reset with a forged CSRF token is refused ({answer.status})")
        answer = context.request.post(f"{project_page}/reset", form={"csrf": csrf}, headers={"Origin": "http://evil.example"}, max_redirects=0)
        check(answer.status == 403, f"a reset posted from another origin is refused ({answer.status})")
        page.goto(project_page)
        check(page.inner_text("#status") == "built" and page.locator("#files a").count() > 0, "nothing was reset by the refused requests")

        parsed = urllib.parse.urlsplit(url)
        connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=120)
        connection.request("GET", f"/ui/projects/{pid}", headers={"Host": f"rebound.example:{parsed.port}"})
        check(connection.getresponse().status == 421, "another host name for the daemon's address is refused (DNS rebinding)")
        anonymous.dispose()
        browser.close()
    print("all checks passed", flush=True)


if __name__ == "__main__":
    main()
