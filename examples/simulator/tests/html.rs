//! The HTML report (`--html FILE`) in a real browser: headless Chromium loads the page, and the
//! test reads what it laid out — one drawn row per SON, every proposal drawn, a deposit's
//! stages in its row — and saves a screenshot beside the test's other output.
//!
//! The page itself is checked without a browser too: one file, nothing fetched from the
//! network. Without Chromium (`chromium` on the PATH, or `SONPROP_CHROMIUM`) the browser part
//! is skipped with a note, unless `SONPROP_BROWSER_TEST=required` (CI sets it, and installs
//! Debian's `chromium`), which makes a missing browser a failure.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

fn temp(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("sonprop-html-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).expect("temp dir");
    p
}

/// The browser to use, if there is one.
fn chromium() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("SONPROP_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|d| ["chromium", "chromium-browser"].map(|n| d.join(n)))
        .find(|p| p.is_file())
}

/// Runs the browser headless on `page` with `args`, killed after a minute; its stdout.
fn browse(browser: &Path, page: &Path, args: &[&str], profile: &Path) -> String {
    let mut child = Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the browser starts");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the browser did not finish within a minute");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of `attribute="…"` on the first element that has it.
fn attribute(dom: &str, attribute: &str) -> Option<String> {
    let at = dom.find(&format!("{attribute}=\""))? + attribute.len() + 2;
    Some(dom[at..].split('"').next()?.to_owned())
}

#[test]
fn the_html_report_is_one_page_and_a_browser_draws_every_son_proposal_and_stage() {
    let d = temp("bridge");
    let page = d.join("report.html");
    let json = d.join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_sonprop"))
        .args(["simulate", "-q", "scenarios/bitcoin-bridge.toml", "--html"])
        .arg(&page)
        .arg("--report")
        .arg(&json)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let html = std::fs::read_to_string(&page).expect("page");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("report")).expect("JSON");
    let sons = report["sons"].as_array().expect("sons").len();
    let proposals = report["proposals"].as_array().expect("proposals").len();
    let deposits = report["bitcoin"]["deposits"].as_array().expect("deposits");

    // One self-contained file: nothing to fetch.
    for remote in ["http://", "https://", " src=", "<link", "@import", "url("] {
        assert!(!html.contains(remote), "the page refers to something outside it: {remote}");
    }
    assert_eq!(html.matches(r#"class="son-row""#).count(), sons);
    // SON 1.33.3's history, in order, across the whole axis (genesis at x 110, the head at
    // 1010): active, reported down, deregistered.
    let row = &html[html.find(r#"data-son="1.33.3""#).expect("its row")..];
    let row = &row[..row.find("</g>").expect("row ends")];
    let attr = |at: &str, name: &str| -> f64 {
        let v = &at[at.find(&format!(" {name}=\"")).expect(name) + name.len() + 3..];
        v[..v.find('"').expect("quoted")].parse().expect("a number")
    };
    let spans: Vec<(&str, f64, f64)> = row
        .split("<rect ")
        .skip(1)
        .map(|r| {
            let status = r.split("data-status=\"").nth(1).and_then(|s| s.split('"').next());
            (status.expect("a status"), attr(r, "x"), attr(r, "x") + attr(r, "width"))
        })
        .collect();
    let statuses: Vec<&str> = spans.iter().map(|s| s.0).collect();
    assert_eq!(statuses, ["active", "in_maintenance", "deregistered"]);
    assert_eq!(spans[0].1, 110.0, "from genesis");
    assert!((spans[2].2 - 1010.0).abs() < 0.01, "to the head: {spans:?}");
    assert!(spans.windows(2).all(|w| (w[0].2 - w[1].1).abs() < 0.01), "no gap: {spans:?}");
    // The time axis: ticks from genesis, two hours apart over 17 hours.
    let strip = &html[..html.find("<h2>Proposals").expect("the proposals follow")];
    let ticks: Vec<&str> =
        strip.split(r#"class="tick">"#).skip(1).filter_map(|t| t.split('<').next()).collect();
    assert_eq!(ticks.first(), Some(&"T+00:00:00"), "{ticks:?}");
    let every_two_hours: Vec<String> = (0..=8).map(|h| format!("T+{:02}:00:00", 2 * h)).collect();
    assert_eq!(ticks, every_two_hours, "to the last whole step before the head");

    let Some(browser) = chromium() else {
        let required = std::env::var("SONPROP_BROWSER_TEST").is_ok_and(|v| v == "required");
        assert!(!required, "SONPROP_BROWSER_TEST=required, but no chromium on the PATH");
        println!("no chromium on the PATH: the page was checked, the browser part skipped");
        return;
    };
    let dom = browse(&browser, &page, &["--dump-dom"], &d.join("profile"));
    let drawn = |what: &str| attribute(&dom, what).and_then(|n| n.parse::<usize>().ok());
    assert_eq!(drawn("data-rendered-son-rows"), Some(sons), "every SON's row is laid out");
    assert_eq!(drawn("data-rendered-proposals"), Some(proposals), "every proposal is drawn");
    // The first deposit: its five stages, in its row, as the report gives them.
    let first = deposits[0]["outpoint"].as_str().expect("outpoint");
    let row = dom.find(&format!(r#"data-outpoint="{first}""#)).expect("the deposit's row");
    let row = &dom[row..row + dom[row..].find("</tr>").expect("row ends")];
    for stage in ["paid", "reported", "confirmed", "swept", "settled"] {
        let want = deposits[0]["stages"][stage]["offset"].as_str().expect(stage);
        let cell = format!(r#"data-stage="{stage}">{want}</td>"#);
        assert!(row.contains(&cell), "{stage}: {want} not in {row}");
    }
    assert_eq!(attribute(&dom, "data-holds").as_deref(), Some("true"), "conservation");

    // The screenshot, kept with the test's output.
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("html-report.png");
    let _ = std::fs::remove_file(&shot);
    let arg = format!("--screenshot={}", shot.display());
    browse(&browser, &page, &[&arg, "--window-size=1100,1400", "--hide-scrollbars"], &d.join("p2"));
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{} bytes", png.len());
    println!("screenshot: {}", shot.display());
    let _ = std::fs::remove_dir_all(&d);
}
