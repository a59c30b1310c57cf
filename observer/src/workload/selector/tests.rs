use super::*;

fn litellm() -> Workload {
    Workload {
        namespace: "ai-gw".into(),
        pod: "litellm-7d9f8-x2x4q".into(),
        container: "proxy".into(),
        container_id: "ab".repeat(32),
        exe: "/usr/bin/python3.12".into(),
        cgroup_path: "/kubepods.slice/x".into(),
        ..Workload::default()
    }
}

fn sel(s: &str) -> GatewaySelector {
    GatewaySelector::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn each_key_matches_its_field() {
    let w = litellm();
    for s in [
        "namespace=ai-gw",
        "pod=litellm-*",
        "container=proxy",
        "process=litellm",
        "exe=/usr/bin/python3*",
    ] {
        assert!(sel(s).matches(&w, "litellm"), "{s}");
    }
    for s in [
        "namespace=default",
        "pod=ollama-*",
        "container=sidecar",
        "process=curl",
        "exe=/usr/bin/node",
    ] {
        assert!(!sel(s).matches(&w, "litellm"), "{s}");
    }
}

#[test]
fn all_terms_of_a_selector_must_match() {
    let w = litellm();
    assert!(sel("namespace=ai-gw,container=proxy").matches(&w, "litellm"));
    assert!(!sel("namespace=ai-gw,container=other").matches(&w, "litellm"));
    assert!(!sel("namespace=other,container=proxy").matches(&w, "litellm"));
}

#[test]
fn globs_apply_to_every_glob_key() {
    let w = litellm();
    assert!(sel("namespace=ai-*").matches(&w, "x"));
    assert!(sel("container=pro??").matches(&w, "x"));
    assert!(sel("process=lite*").matches(&w, "litellm"));
}

#[test]
fn terms_never_match_unknown_empty_fields() {
    let host = Workload {
        exe: "/usr/bin/python3".into(),
        ..Workload::default()
    };
    assert!(!sel("namespace=*").matches(&host, "python3"));
    assert!(!sel("pod=*").matches(&host, "python3"));
    assert!(!sel("exe=*").matches(&Workload::default(), "python3"));
    assert!(!sel("process=*").matches(&host, ""));
    assert!(sel("exe=*").matches(&host, "python3"));
}

#[test]
fn process_literal_longer_than_comm_matches_the_truncated_comm() {
    let w = litellm();
    assert!(sel("process=gunicorn-worker-main").matches(&w, "gunicorn-worker"));
    assert!(!sel("process=gunicorn-worker-main").matches(&w, "gunicorn-work"));
    assert!(!sel("process=gunicorn-worker-*").matches(&w, "gunicorn-worker"));
}

#[test]
fn label_parses_but_never_matches_without_the_api() {
    let s = sel("label=app=litellm");
    assert!(s.needs_kubernetes_api());
    assert!(!s.matches(&litellm(), "litellm"));
    assert!(!sel("namespace=ai-gw").needs_kubernetes_api());
    // Several labels may be required at once.
    assert!(sel("label=app=litellm,label=tier=gw").needs_kubernetes_api());
}

#[test]
fn label_matches_exactly_when_the_api_gave_labels() {
    let w = Workload {
        labels: std::sync::Arc::new(
            [("app", "litellm"), ("tier", "gw")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into(),
        ),
        ..litellm()
    };
    assert!(sel("label=app=litellm").matches(&w, ""));
    assert!(sel("label=app=litellm,label=tier=gw,namespace=ai-*").matches(&w, ""));
    assert!(!sel("label=app=litellm,label=tier=db").matches(&w, ""));
    assert!(
        !sel("label=app=lite*").matches(&w, ""),
        "label values are not globs"
    );
    assert!(!sel("label=version=1").matches(&w, ""));
}

#[test]
fn whitespace_and_key_case_are_forgiven() {
    let s = sel(" Namespace = ai-gw , container=proxy ,");
    assert!(s.matches(&litellm(), "x"));
    assert_eq!(s.to_string(), "namespace=ai-gw,container=proxy");
}

#[test]
fn display_round_trips() {
    for s in [
        "namespace=ai-gw",
        "pod=litellm-*,exe=/usr/bin/python3*",
        "label=app=litellm,process=litellm",
    ] {
        assert_eq!(sel(s).to_string(), s);
        assert_eq!(s.parse::<GatewaySelector>().unwrap(), sel(s));
    }
}

#[test]
fn errors_name_the_bad_key_and_list_allowed_keys() {
    let err = GatewaySelector::parse("namespace=ai-gw,host=x").unwrap_err();
    assert_eq!(err, SelectorError::UnknownKey { key: "host".into() });
    let msg = err.to_string();
    assert!(msg.contains("\"host\""), "{msg}");
    for key in ["namespace", "pod", "container", "process", "exe", "label"] {
        assert!(msg.contains(key), "{msg} lacks {key}");
    }
}

#[test]
fn malformed_selectors_are_rejected() {
    use SelectorError::*;
    let cases = [
        ("", Empty),
        (" , ", Empty),
        (
            "litellm",
            NotKeyValue {
                term: "litellm".into(),
            },
        ),
        ("pod=", EmptyValue { key: "pod".into() }),
        (
            "bogus=",
            UnknownKey {
                key: "bogus".into(),
            },
        ),
        ("=x", UnknownKey { key: "".into() }),
        ("pod=a,pod=b", DuplicateKey { key: "pod".into() }),
        (
            "label=app",
            BadLabel {
                value: "app".into(),
            },
        ),
        ("label==x", BadLabel { value: "=x".into() }),
        (
            "label=app=",
            BadLabel {
                value: "app=".into(),
            },
        ),
    ];
    for (s, want) in cases {
        assert_eq!(GatewaySelector::parse(s), Err(want), "{s:?}");
    }
    assert!(Empty.to_string().contains("namespace, pod"));
    assert!(
        NotKeyValue { term: "x".into() }
            .to_string()
            .contains("keys:")
    );
}
