//! Benchmark helper: the integration tests' token issuer (`regprobe_testsupport::token`) as a
//! process, so `bench/run.sh` can put a real token-auth `docker-registry` behind it.
//!
//! `regprobe-bench-token-issuer N PASSWORD_PREFIX` starts the issuer on 127.0.0.1 with users
//! `u0000`..`u{N-1}` whose passwords are `PASSWORD_PREFIX` + the same number, prints one JSON
//! line `{"realm","service","issuer","rootcertbundle"}` (what the registry's `auth.token` needs),
//! and serves until its standard input closes. Nothing listens anywhere but 127.0.0.1.

use std::io::{Read, Write};

use regprobe_testsupport as support;
use support::token::{TokenIssuer, TokenIssuerOptions, TokenUser};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(n), Some(prefix)) = (
        args.get(1).and_then(|n| n.parse::<usize>().ok()),
        args.get(2),
    ) else {
        eprintln!("usage: regprobe-bench-token-issuer N PASSWORD_PREFIX");
        std::process::exit(2);
    };
    let mut opts = TokenIssuerOptions::new()
        .service("regprobe-bench")
        .issuer("regprobe-bench-issuer")
        .expires_in(3600);
    for i in 0..n {
        opts = opts.user(TokenUser::new(&format!("u{i:04}"), &format!("{prefix}{i:04}")).pull("*"));
    }
    let issuer = TokenIssuer::start(opts);
    let support::Auth::Token {
        realm,
        service,
        issuer: iss,
        rootcertbundle,
    } = issuer.registry_auth()
    else {
        unreachable!("a token issuer gives token auth");
    };
    let line = serde_json::json!({
        "realm": realm,
        "service": service,
        "issuer": iss,
        "rootcertbundle": rootcertbundle,
    });
    let mut out = std::io::stdout();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
    // Serve until the driver closes our stdin (or dies: then the read returns too).
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(issuer);
}
