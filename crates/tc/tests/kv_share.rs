//! `tc kv share`: the URL it prints downloads the value with any HTTP client and no
//! credentials; it serves one version of one value, and only as long as it should.

mod common;

use common::*;

/// `GET url` with optional extra headers: (status, body).
fn download(url: &str, headers: &[(&str, &str)]) -> (u16, Vec<u8>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut req = reqwest::Client::new().get(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.bytes().await.unwrap().to_vec())
    })
}

#[test]
fn kv_share_prints_a_url_any_http_client_downloads() {
    let node = serve();
    let o = owner(&node);
    // Binary and larger than the node keeps inline.
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 256) as u8).collect();
    std::fs::write(o.file("blob.bin"), &data).unwrap();
    o.tc(&["kv", "put", "files/blob.bin", "--file"])
        .arg(o.file("blob.bin"))
        .assert()
        .success();

    // The URL alone on stdout (the expiry goes to stderr), so `curl "$(tc kv share …)"` works.
    let out = o
        .tc(&["kv", "share", "files/blob.bin", "--ttl", "5m"])
        .assert()
        .success()
        .get_output()
        .clone();
    let url = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(
        url.starts_with(&format!("{}/signed/kv/", node.url)),
        "{url}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("expires at"));
    let (status, body) = download(&url, &[]);
    assert_eq!(status, 200);
    assert!(body == data, "the download is the value");
    let (status, body) = download(&url, &[("range", "bytes=100-199")]);
    assert_eq!(status, 206);
    assert!(body == data[100..200]);

    // JSON for scripts.
    let v = o.json(&["kv", "share", "files/blob.bin", "--ttl", "90s"]);
    assert_eq!(v["key"], "files/blob.bin");
    let json_url = v["url"].as_str().unwrap();
    assert!(json_url.ends_with(v["ticketId"].as_str().unwrap()));
    assert!(v["expiresAt"].as_str().unwrap().ends_with('Z'));
    assert_eq!(download(json_url, &[]).0, 200);

    // Refused before anything is sent: too long a lifetime, a dot segment.
    o.tc(&["kv", "share", "files/blob.bin", "--ttl", "10m"])
        .assert()
        .code(2);
    o.tc(&["kv", "share", "files/../x"]).assert().code(2);
    // A key that does not exist.
    assert_eq!(
        o.json_error(&["kv", "share", "files/none"], 4)["code"],
        "NOT_FOUND"
    );

    // A delegate that may write but not read cannot share; one that may read can.
    let (writer, _) = delegate(&node, &o, "kv", "files/", "put");
    writer
        .tc(&["kv", "share", "files/blob.bin"])
        .assert()
        .code(5);
    let (reader, _) = delegate(&node, &o, "kv", "files/", "get");
    let shared = String::from_utf8(reader.ok(&["kv", "share", "files/blob.bin"])).unwrap();
    assert_eq!(download(shared.trim(), &[]).0, 200);

    // The URL serves that version only.
    o.tc(&["kv", "put", "files/blob.bin", "changed"])
        .assert()
        .success();
    assert_eq!(download(&url, &[]).0, 412);
}
