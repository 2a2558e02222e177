//! The per-core connection limit: at `gateway.limits.connectionsPerCore` the gateway
//! stops accepting (the kernel's backlog holds new clients) instead of failing, and
//! takes the waiting client as soon as a connection closes.

mod common;

use common::{get_req, Backend, Client, Gateway, ANY_OP};
use std::io::Read;
use std::net::TcpStream;
use std::time::Duration;

#[test]
fn at_the_connection_limit_new_clients_wait_and_are_served_when_one_closes() {
    let backend = Backend::echo();
    let yaml = format!(
        "gateway:\n  limits:\n    connectionsPerCore: 2\napis:\n  - id: a\n    path: a\n    serviceUrl: {}\n    operations:\n      - {ANY_OP}\n",
        backend.url()
    );
    let gw = Gateway::builder(&yaml).cores(1).start();

    let mut first = Client::connect(gw.addr);
    first.send(get_req("/a/1"));
    assert_eq!(first.read_response().status, 200);
    let mut second = Client::connect(gw.addr);
    second.send(get_req("/a/2"));
    assert_eq!(second.read_response().status, 200);

    // The third connection is queued by the kernel, not accepted: its request waits.
    let mut third = TcpStream::connect(gw.addr).expect("the kernel still accepts into the backlog");
    std::io::Write::write_all(&mut third, &get_req("/a/3")).unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let mut buf = [0u8; 64];
    match third.read(&mut buf) {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) => {}
        other => panic!("served past the connection limit: {other:?}"),
    }

    // One closes: the waiting client is taken and answered.
    drop(first);
    third
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let n = third.read(&mut buf).expect("answered once a slot frees up");
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );

    // The gateway is still healthy for the connections it holds.
    second.send(get_req("/a/4"));
    assert_eq!(second.read_response().status, 200);
}
