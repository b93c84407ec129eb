//! `simulate --output html`: the page is well-formed (parsed as XHTML),
//! self-contained (no external URL), escapes cluster strings, and draws:
//! headless Chromium renders it to a PNG that is not blank.

mod common;

use common::{NOW, root, run, snapshot};

use quick_xml::events::Event;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
/// A zone name with every character XML gives a meaning to.
const ODD_ZONE: &str = "i<&>\"'";

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("html-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The ACK snapshot's nodes with zone `i` renamed to `ODD_ZONE`.
fn odd_nodes(dir: &Path) -> PathBuf {
    let nodes = root().join("crates/kubectl-deletion-cost/snapshots/ack-zones/nodes.json");
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(nodes).unwrap()).unwrap();
    for node in doc["items"].as_array_mut().unwrap() {
        let zone = &mut node["metadata"]["labels"]["available_zone"];
        if zone == "i" {
            *zone = ODD_ZONE.into();
        }
    }
    let path = dir.join("nodes.json");
    std::fs::write(&path, doc.to_string()).unwrap();
    path
}

fn page(dir: &Path) -> String {
    let settings = root().join("examples/ack-zones-placeholders.yaml");
    let out = run(
        "simulate",
        [
            "--now".as_ref(),
            NOW.as_ref(),
            "-o".as_ref(),
            "html".as_ref(),
            "--scale".as_ref(),
            "shop/web=3".as_ref(),
            "--scale".as_ref(),
            "shop/api=4".as_ref(),
            "--settings".as_ref(),
            settings.as_os_str(),
            odd_nodes(dir).as_os_str(),
            snapshot("ack-zones/pods.json").as_os_str(),
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    out.stdout
}

/// Parses the page as XML; returns its text content and every
/// (element, attribute, value).
fn parse(page: &str) -> (String, Vec<(String, String, String)>) {
    let mut reader = quick_xml::Reader::from_str(page);
    reader.config_mut().check_end_names = true;
    let (mut text, mut attributes, mut depth) = (String::new(), Vec::new(), 0i32);
    loop {
        let event = reader
            .read_event()
            .unwrap_or_else(|e| panic!("not well-formed at {}: {e}", reader.buffer_position()));
        match event {
            Event::Eof => break,
            Event::Start(ref e) | Event::Empty(ref e) => {
                if matches!(event, Event::Start(_)) {
                    depth += 1;
                }
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                for a in e.attributes() {
                    let a = a.expect("attribute");
                    let value = a.unescape_value().expect("attribute value").into_owned();
                    let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
                    attributes.push((name.clone(), key, value));
                }
            }
            Event::End(_) => depth -= 1,
            Event::Text(t) => text.push_str(&t.decode().expect("text")),
            Event::GeneralRef(r) => {
                let name = r.decode().expect("entity");
                text.push_str(match name.as_ref() {
                    "amp" => "&",
                    "lt" => "<",
                    "gt" => ">",
                    "quot" => "\"",
                    "#39" => "'",
                    other => panic!("unexpected entity {other}"),
                });
            }
            _ => {}
        }
    }
    assert_eq!(depth, 0, "every element is closed");
    (text, attributes)
}

#[test]
fn page_is_well_formed_self_contained_and_escaped() {
    let dir = scratch("well-formed");
    let page = page(&dir);
    let (text, attributes) = parse(&page);
    for (element, key, value) in &attributes {
        let external = ["http:", "https:", "//"]
            .iter()
            .any(|p| value.trim_start().starts_with(p));
        assert!(
            !(matches!(key.as_str(), "src" | "href") && external),
            "<{element} {key}={value:?}>"
        );
        assert!(!value.contains("url("), "<{element} {key}={value:?}>");
    }
    assert!(!page.contains("url("), "CSS loads nothing");
    assert!(!page.contains("<script"), "no script");
    assert!(!page.contains("@import"), "no imported style");
    // Cluster strings come through escaped, and read back as they were.
    assert!(text.contains(&format!("{ODD_ZONE} (")), "{text}");
    assert!(!page.contains(ODD_ZONE));
    // One section per ReplicaSet, one cell per pod, the scale-downs.
    assert!(text.contains("ReplicaSet shop/web-58c9d7f6b4 (Deployment web): 9 pods"));
    assert!(text.contains("ReplicaSet shop/api-6d4b8f7c9 (Deployment api): 6 pods"));
    assert!(text.contains("Scale shop/web 9 → 3: 6 removed"));
    assert!(text.contains("Scale shop/api 6 → 4: 2 removed"));
    let cells = attributes
        .iter()
        .filter(|(e, k, v)| e == "div" && k == "class" && v.starts_with("pod"))
        .count();
    let removed = attributes
        .iter()
        .filter(|(e, k, v)| e == "div" && k == "class" && v == "pod removed")
        .count();
    let pods_in_report = page.matches("<span class=\"name\">").count();
    assert_eq!(cells, pods_in_report);
    assert_eq!(removed, 8);
}

/// Runs Chromium on the page with a bounded wait.
fn screenshot(page: &Path, png: &Path, profile: &Path) -> Result<(), String> {
    let mut child = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1200,900",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{CHROMIUM}: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return if status.success() {
                Ok(())
            } else {
                Err(format!("{CHROMIUM} exited with {status}"))
            };
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{CHROMIUM} did not finish within 120 s"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn chromium_draws_the_page() {
    if !Path::new(CHROMIUM).exists() {
        eprintln!("SKIP chromium_draws_the_page: {CHROMIUM} not found (Debian package chromium)");
        return;
    }
    let dir = scratch("chromium");
    let html = dir.join("report.html");
    std::fs::write(&html, page(&dir)).unwrap();
    let png = dir.join("report.png");
    screenshot(&html, &png, &dir.join("profile")).expect("screenshot");
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&png).expect("the PNG exists"),
    ));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size().expect("size")];
    let frame = reader.next_frame(&mut pixels).expect("PNG pixels");
    assert_eq!((frame.width, frame.height), (1200, 900));
    let channels = frame.color_type.samples();
    let colours: std::collections::BTreeSet<&[u8]> =
        pixels[..frame.buffer_size()].chunks(channels).collect();
    // White page, black text, and the red-to-green cells.
    assert!(
        colours.len() > 50,
        "{} colours: a blank page?",
        colours.len()
    );
    let reddish = pixels[..frame.buffer_size()]
        .chunks(channels)
        .filter(|p| p[0] > 200 && p[1] < 180 && p[2] < 180)
        .count();
    assert!(
        reddish > 1000,
        "{reddish} reddish pixels: no first-deleted cell drawn"
    );
}
