//! The real services the test command starts answer where the tests expect them.

use std::io::{Read, Write};

fn http_get(mut stream: impl Read + Write, path: &str) -> String {
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out
}

#[test]
#[ignore = "NOT RUN: needs the OCI registry (./scripts/test.sh starts it)"]
fn the_registry_speaks_the_distribution_api() {
    let stream = std::net::TcpStream::connect(spacktainerizah_tests::registry()).unwrap();
    let resp = http_get(stream, "/v2/");
    assert!(
        resp.starts_with("HTTP/1.0 200") || resp.starts_with("HTTP/1.1 200"),
        "{resp}"
    );
    assert!(
        resp.to_ascii_lowercase()
            .contains("docker-distribution-api-version: registry/2.0"),
        "{resp}"
    );
}

#[test]
#[ignore = "NOT RUN: needs the Docker daemon (./scripts/test.sh starts it)"]
fn the_docker_daemon_answers_on_its_private_socket() {
    let host = spacktainerizah_tests::docker_host();
    let path = host.strip_prefix("unix://").expect("a unix socket");
    let stream = std::os::unix::net::UnixStream::connect(path).unwrap();
    let resp = http_get(stream, "/_ping");
    assert!(resp.ends_with("OK"), "{resp}");
}
