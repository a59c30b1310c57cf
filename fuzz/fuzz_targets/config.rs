//! The config file: TOML text → validated configuration, as `gatewatch run
//! --config` does it. Errors are fine; panics are not, and what the config
//! API shows must read back as the same configuration.
#![no_main]

use libfuzzer_sys::fuzz_target;
use observer::{
    classification::{HostPattern, Pattern},
    daemon::{config::Config, settings::Settings},
    workload::GatewaySelector,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = Settings::parse(text) else {
        return;
    };
    let Ok(config) = Config::build(&file, &Settings::default()) else {
        return;
    };
    // `GET /api/v1/config` prints patterns with Display; written back into
    // a config file they must mean the same destinations.
    for rule in &config.rules {
        let shown = rule.pattern.to_string();
        let reread: Pattern = shown
            .parse()
            .unwrap_or_else(|e| panic!("{shown:?} from {:?} does not parse: {e}", rule.pattern));
        assert_eq!(reread, rule.pattern, "{shown:?}");
    }
    for ignore in &config.ignore {
        let shown = ignore.to_string();
        assert_eq!(HostPattern::parse(&shown).as_ref(), Ok(ignore), "{shown:?}");
    }
    for selector in &config.gateway_workloads {
        let shown = selector.to_string();
        assert_eq!(
            GatewaySelector::parse(&shown).as_ref(),
            Ok(selector),
            "{shown:?}"
        );
    }
    let _ = config.view();
});
