//! Unit tests of the walk and its verdicts.

use super::http::*;
use super::*;
use crate::probe::failure::{AuthScheme, DnsFailure, Failed, Failure, Peer, TransportError};
use crate::probe::{AuthMode, Class, Exchange, Phase, ProbeResult, Reason};
use crate::probe::{HostVerdict, NetworkStep};
use crate::report::advice::verdict;

fn basic_unauthorized() -> ProbeResult {
    let mut r = ProbeResult::new("127.0.0.1:5000", Some("stale".into()));
    r.username = Some("alice".into());
    r.auth_mode = Some(AuthMode::Basic);
    r.endpoint = Some("http://127.0.0.1:5000/v2/".into());
    r.reason = Some(Reason::Unauthorized);
    r.class = Some(Class::Credential);
    r.detail = "GET http://127.0.0.1:5000/v2/ with Basic credentials of user `alice` answered 401: UNAUTHORIZED".into();
    r.network.push(NetworkStep {
        host: "127.0.0.1".into(),
        source: "literal".into(),
        addresses: vec!["127.0.0.1".into()],
        connected: Some("127.0.0.1:5000".into()),
    });
    r.add_phase(Phase::Resolve, 0.0);
    r.add_phase(Phase::Connect, 0.001);
    for (phase, status) in [(Phase::Challenge, 401), (Phase::Verify, 401)] {
        r.exchanges.push(Exchange {
            phase: Some(phase),
            method: "GET".into(),
            url: "http://127.0.0.1:5000/v2/".into(),
            status: Some(status),
            challenge: Some("Basic realm=\"r\"".into()),
            error_code: Some("UNAUTHORIZED".into()),
            error_message: Some("authentication required".into()),
            response_headers: vec![],
        });
    }
    r.failed = Some(Failed {
        failure: Failure::VerifyStatus {
            scheme: AuthScheme::Basic,
            status: 401,
            challenge_error: None,
        },
        step: Some(Phase::Verify),
        host: "127.0.0.1:5000".into(),
        credential_sent: true,
        exchange: Some(1),
    });
    r
}

#[test]
fn a_wrong_password_breaks_at_verify() {
    let r = basic_unauthorized();
    let steps = credential_steps(&r);
    let marks: Vec<(StepKind, Mark)> = steps.iter().map(|s| (s.step, s.mark)).collect();
    assert_eq!(
        marks,
        vec![
            (StepKind::Dns, Mark::Ok),
            (StepKind::Tcp, Mark::Ok),
            (StepKind::Tls, Mark::Skip),
            (StepKind::Challenge, Mark::Ok),
            (StepKind::Token, Mark::Skip),
            (StepKind::Verify, Mark::Fail),
        ]
    );
    assert!(
        steps[5]
            .summary
            .contains("refused the Basic credential of user `alice` (401)"),
        "{}",
        steps[5].summary
    );
    let v = verdict(&r, None, &Context::default());
    assert_eq!(v.class, Some(Class::Credential));
    assert!(
        v.summary
            .contains("rejected the credential of user `alice`"),
        "{}",
        v.summary
    );
    assert!(v.next.contains("kubectl create secret docker-registry stale -n NAMESPACE --docker-server=127.0.0.1:5000 --docker-username=alice --docker-password=…"), "{}", v.next);
}

#[test]
fn a_realm_that_does_not_resolve_breaks_at_token() {
    let mut r = basic_unauthorized();
    r.auth_mode = Some(AuthMode::Bearer);
    r.exchanges.pop();
    r.exchanges.push(Exchange {
        phase: Some(Phase::Token),
        method: "POST".into(),
        url: "http://auth.test:1/token".into(),
        ..Exchange::default()
    });
    r.reason = Some(Reason::Dns);
    r.class = Some(Class::Network);
    r.detail = "POST http://auth.test:1/token: the token service could not be reached: resolving auth.test: no such host (NXDOMAIN)".into();
    r.failed = Some(Failed {
        failure: Failure::Transport {
            peer: Peer::Realm,
            error: TransportError::Dns {
                host: "auth.test".into(),
                kind: DnsFailure::NxDomain,
            },
        },
        step: Some(Phase::Token),
        host: "auth.test:1".into(),
        credential_sent: true,
        exchange: Some(r.exchanges.len() - 1),
    });
    let steps = credential_steps(&r);
    assert_eq!(steps[0].mark, Mark::Ok, "the registry resolved");
    assert_eq!(steps[4].mark, Mark::Fail);
    assert!(
        steps[4]
            .summary
            .contains("the token service auth.test:1 cannot be reached: resolving auth.test"),
        "{}",
        steps[4].summary
    );
    assert_eq!(steps[5].mark, Mark::NotReached);
    let v = verdict(&r, None, &Context::default());
    assert!(
        v.summary
            .contains("this node cannot resolve auth.test: no such host (NXDOMAIN)"),
        "{}",
        v.summary
    );
}

#[test]
fn an_anonymous_refused_pull_names_the_key_mismatch() {
    let mut p = ProbeResult::new("registry.company.com", None);
    p.image = Some("registry.company.com/app:1".into());
    p.reason = Some(Reason::NoMatchingCredential);
    p.class = Some(Class::Config);
    p.hosts.push(HostVerdict {
        host: "https://registry.company.com/v2".into(),
        mirror: false,
        success: false,
        reason: Some(Reason::NoMatchingCredential),
        detail: "401".into(),
    });
    p.exchanges.push(Exchange {
        phase: Some(Phase::Manifest),
        method: "HEAD".into(),
        url: "https://registry.company.com/v2/app/manifests/1".into(),
        status: Some(401),
        ..Exchange::default()
    });
    let facts = ImageFacts {
            image: "registry.company.com/app:1".into(),
            domain: "registry.company.com".into(),
            repository: "app".into(),
            reference: "1".into(),
            mismatches: vec!["secret `regcred` has key `private.registry.com` but the image host is `registry.company.com`".into()],
            mismatch_user: Some("ci-bot".into()),
            mismatch_secret: Some("regcred".into()),
        };
    let v = verdict(&p, Some(&facts), &Context::default());
    assert_eq!(v.class, Some(Class::Config));
    assert!(v.summary.starts_with("secret `regcred` has key `private.registry.com` but the image host is `registry.company.com`: kubelet pulls anonymously"), "{}", v.summary);
    assert!(v.next.contains("create secret docker-registry regcred -n NAMESPACE --docker-server=registry.company.com --docker-username=ci-bot"), "{}", v.next);
    let steps = attempt_steps(None, &p);
    assert_eq!(steps.last().unwrap().mark, Mark::Fail);
}

#[test]
fn retries_fold_into_one_line() {
    let e = Exchange {
        phase: Some(Phase::Manifest),
        method: "HEAD".into(),
        url: "u".into(),
        status: Some(401),
        ..Exchange::default()
    };
    let folded = fold(vec![view(&e, vec![]), view(&e, vec![]), view(&e, vec![])]);
    assert_eq!(folded.len(), 1);
    assert_eq!(folded[0].repeated, 3);
}
