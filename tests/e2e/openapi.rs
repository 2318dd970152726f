//! The served OpenAPI document is true: schemathesis (installed by
//! `tests/env/up.sh`, which prints `DECKHAND_SCHEMATHESIS`) fuzzes a live
//! server on the in-memory runtime from the document alone, with every
//! check on — no server error, every status, content type, header and body
//! as documented, invalid input refused, valid input accepted, the token
//! required where declared. Without schemathesis the test fails, as the
//! Docker-backed tests do without a daemon.
//!
//! The run's seed is random and printed; to replay a failure, run the
//! printed command with `--seed N` against `deckhand serve --runtime memory`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Server, TEST_TOKEN};

/// Test cases per operation and phase: 15 s alone, under a minute on 2
/// cores busy with the other tests.
const MAX_EXAMPLES: &str = "100";
/// The run is killed (and the test fails) after this long.
const DEADLINE: Duration = Duration::from_secs(300);

/// Where up.sh installs it: `DECKHAND_SCHEMATHESIS`, else the test
/// environment's venv.
fn schemathesis() -> PathBuf {
    let hint = "no schemathesis: run `eval \"$(tests/env/up.sh)\"` first (installs it in a venv \
                and sets DECKHAND_SCHEMATHESIS), or use scripts/test.sh";
    let path = std::env::var_os("DECKHAND_SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let env = std::env::var_os("DECKHAND_TESTENV")
                .unwrap_or_else(|| "/tmp/deckhand-testenv".into());
            PathBuf::from(env).join("venv/bin/schemathesis")
        });
    let runs = Command::new(&path)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(runs, "{hint} (tried {})", path.display());
    path
}

/// Media types schemathesis cannot generate by itself: a component upload
/// is bytes, sometimes behind a Wasm module's or component's preamble so
/// that the validation gets past the first check.
const HOOKS: &str = r#"
import schemathesis
from hypothesis import strategies as st

_tail = st.binary(max_size=256)
schemathesis.openapi.media_type(
    "application/wasm",
    st.one_of(
        _tail,
        _tail.map(lambda b: b"\0asm\x01\0\0\0" + b),
        _tail.map(lambda b: b"\0asm\x0d\0\x01\0" + b),
    ),
)
"#;

/// Every check on, and what the document cannot say, stated narrowly (each
/// names why). The checks are enabled here rather than with `--checks all`,
/// which would also override the per-operation exceptions.
const CONFIG: &str = r#"
hooks = "HOOKS_PATH"
# An event stream ends with its job; never read more than this of one.
max-stream-events = 200

[checks]
enabled = true

# A schema-valid submission can still be refused 422: a workflow registered
# at run time (not in the static document), a workflow's params contract
# (image reference grammar, `image` required by `install`), a revision the
# target never had, or an Idempotency-Key already used for another request. The detail names the
# field; every other status stays as checked.
[[operations]]
include-name = "POST /v1/jobs"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "404", "409", "422"]

# Whether bytes are a valid workflow component is not a schema's to say.
[[operations]]
include-name = "POST /v1/plugins"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "409", "422"]

# DELETE /v1/jobs/{id} dismisses a finished job from the default listings;
# the job stays in the journal and readable by id (SPEC), so reading it
# afterwards is not a use after free.
[[operations]]
include-name = ["GET /v1/jobs/{id}", "GET /v1/jobs/{id}/events"]
checks.use_after_free.enabled = false
"#;

#[test]
fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let bin = schemathesis();
    let server = Server::start("memory", Some(TEST_TOKEN));
    let dir = tempfile::tempdir().unwrap();
    let hooks = dir.path().join("deckhand_hooks.py");
    std::fs::write(&hooks, HOOKS).unwrap();
    let config = dir.path().join("schemathesis.toml");
    std::fs::write(
        &config,
        CONFIG.replace("HOOKS_PATH", hooks.to_str().unwrap()),
    )
    .unwrap();
    let log = dir.path().join("schemathesis.log");
    let out = std::fs::File::create(&log).unwrap();
    let started = Instant::now();
    let mut child = Command::new(&bin)
        // Its reports and caches stay in the temporary directory.
        .current_dir(dir.path())
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(server.at("/v1/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {TEST_TOKEN}")])
        .args(["--max-examples", MAX_EXAMPLES])
        .args(["--request-timeout", "30"])
        .args(["--generation-database", "none"])
        .arg("--no-color")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    println!("{text}");
    let status = status
        .unwrap_or_else(|| panic!("schemathesis did not finish within {DEADLINE:?}:\n{text}"));
    assert!(
        status.success(),
        "schemathesis found problems ({status}), see above:\n{text}"
    );
    // Every operation of the document was tested: none left out by a filter.
    let count = |label: &str| -> String {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .unwrap_or_else(|| panic!("no `{label}` line in the summary:\n{text}"))
            .trim()
            .to_owned()
    };
    let selected = count("Selected:");
    let tested = count("Tested:");
    let (n, total) = selected.split_once('/').expect("Selected: N/M");
    assert_eq!(n, total, "operations left out:\n{text}");
    assert_eq!(tested, total, "operations not tested:\n{text}");
    eprintln!(
        "schemathesis: {total} operations, {:.0} s",
        started.elapsed().as_secs_f64()
    );
}
