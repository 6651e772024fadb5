//! The load tester's pages in a real browser (Debian's headless
//! `chromium`): a run's report and a comparison load with no console
//! errors, their charts are drawn, and the numbers a reader looks for are
//! there.

use rampart_testkit::{respond, Origin, TempDir};

fn rampart(args: &[&str]) -> (i32, String) {
    rampart_testkit::run_program(env!("CARGO_BIN_EXE_rampart"), args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_and_the_comparison_draw_in_a_browser() {
    let origin = Origin::start(|req| async move {
        if req.nth % 10 == 0 {
            return respond(503, &[], "busy");
        }
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        respond(200, &[("cache-status", "rampart; hit")], "fine")
    })
    .await;
    let dir = TempDir::new("report-pages");
    let file = |name: &str| dir.path.join(name).display().to_string();
    let url = format!("http://{}/page", origin.addr);
    let (a, b, report, compared) = (
        file("a.json"),
        file("b.json"),
        file("report.html"),
        file("compare.html"),
    );
    let run = {
        let (url, a, b, report, compared) = (
            url.clone(),
            a.clone(),
            b.clone(),
            report.clone(),
            compared.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let (code, text) = rampart(&[
                "load", &url, "-q", "100", "-z", "2s", "--out", &a, "--html", &report,
            ]);
            assert_eq!(code, 0, "{text}");
            let (code, text) = rampart(&["load", &url, "-q", "100", "-z", "2s", "--out", &b]);
            assert_eq!(code, 0, "{text}");
            let (code, text) = rampart(&["compare", &a, &b, "--html", &compared]);
            assert!(code == 0 || code == 1, "{text}");
        })
    };
    run.await.unwrap();

    let (profile, report_url, compare_url) = (
        dir.path.join("profile"),
        format!("file://{report}"),
        format!("file://{compared}"),
    );
    let (report_page, compare_page) = tokio::task::spawn_blocking(move || {
        (
            rampart_testkit::chromium::render(&report_url, &profile, 1000),
            rampart_testkit::chromium::render(&compare_url, &profile, 1000),
        )
    })
    .await
    .unwrap();
    let saved: rampart_load::Report =
        serde_json::from_str(&std::fs::read_to_string(&a).unwrap()).unwrap();
    for (page, charts) in [(&report_page, 6), (&compare_page, 4)] {
        assert!(page.errors().is_empty(), "console errors: {}", page.log);
        let dom = &page.dom;
        assert!(
            dom.matches("<figure class=\"chart\">").count() >= charts,
            "{charts} charts: {dom}"
        );
        assert!(dom.contains("<path d=\"M"), "lines are drawn: {dom}");
        assert!(dom.contains("<title>"), "values on hover");
        for external in ["http://", "https://"] {
            let outside = dom.matches(external).count();
            let targets = dom.matches(&format!("{external}{}", origin.addr)).count();
            assert_eq!(outside, targets, "self-contained: only the target is named");
        }
    }
    let dom = &report_page.dom;
    for shown in [
        format!("<b>{}</b><span>requests</span>", saved.overall.requests),
        format!("{:.2} ms</b><span>p95", saved.overall.latency.p95_ms),
        "Latency by percentile (tail axis)".into(),
        "99.9%".into(),
        "Cache hit ratio".into(),
        "503 ×".into(),
        url.clone(),
    ] {
        assert!(dom.contains(&shown), "the report shows {shown:?}");
    }
    let dom = &compare_page.dom;
    for shown in ["baseline (a)", "current (b)", "within noise", "p99"] {
        assert!(dom.contains(shown), "the comparison shows {shown:?}");
    }
}
