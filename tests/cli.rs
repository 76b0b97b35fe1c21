//! The binary: `baton check` and `baton serve` argument handling.

use std::process::Command;

fn baton() -> Command {
    Command::new(env!("CARGO_BIN_EXE_baton"))
}

fn write(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("baton-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn check_refuses_header_injection_and_names_each_problem() {
    let bad = write(
        "bad.json",
        r#"[{"verb": "sip:refer", "referTo": "agent", "headers": {"X-A": "1\r\nVia: SIP/2.0/UDP evil"}},
            {"verb": "play", "url": "x.wav"}]"#,
    );
    let out = baton().arg("check").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("verb 0 (sip:refer), property \"headers.X-A\": header value must not contain CR, LF or NUL"),
        "{text}"
    );
    assert!(text.contains("verb 1 (play): play: needs media"), "{text}");
}

#[test]
fn check_accepts_a_good_document() {
    let good = write("good.json", r#"[{"sip:refer": {"referTo": "+15083084809", "actionHook": "/action"}}]"#);
    let out = baton().arg("check").arg(&good).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (1 verbs)"));
}

#[test]
fn serve_explains_a_bad_configuration() {
    let out = baton().args(["serve", "--listen", "127.0.0.1:0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--call-hook URL or --app FILE"));
    let bad = write("bad-app.json", r#"[{"verb": "sip:refer"}]"#);
    let out = baton().args(["serve", "--listen", "127.0.0.1:0", "--app"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("verb 0 (sip:refer), property \"referTo\": is required"));
}

#[test]
fn config_prints_every_key_with_its_effective_value_and_reads_back() {
    let app = write("config-app.json", r#"[{"verb": "sip:refer", "referTo": "agent"}]"#);
    let out =
        baton().args(["config", "--max-calls", "7", "--webhook-secret", "hush", "--app"]).arg(&app).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for line in [
        "max_calls = 7",
        "notify_timeout = 15.0",
        "t1_ms = 500",
        "listen = [\"udp:0.0.0.0:5060\"]",
        "# call_status_hook (unset)",
        "# webhook_secret (set, not shown)",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} in\n{text}");
    }
    assert!(!text.contains("hush"), "a secret is never printed");
    // What it prints is a configuration file that gives the same configuration.
    let file = write("effective.toml", &text);
    let again = baton().args(["config", "--webhook-secret", "hush", "--config"]).arg(&file).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&again.stdout), text);
}

#[test]
fn an_unknown_key_in_the_file_is_named() {
    let file = write("unknown.toml", "max_calls = 3\nmax_call = 4\n");
    let out = baton().args(["config", "--config"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown field `max_call`"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

const PROFILES: &str = r#"
call_hook = "http://127.0.0.1:9/call"

[[profile]]
name = "twilio"
sources = ["54.172.60.0/23", "34.203.250.0/23"]
scheme = "tel"
plus = "add"

[[profile]]
name = "teams"
sources = ["52.112.0.0/14"]
request_host = "sbc.example.com"
bye_after_success = "wait:2000"
headers = { X-MS-Tenant = "contoso" }
"#;

#[test]
fn check_config_validates_trunk_profiles() {
    let good = write("profiles.toml", PROFILES);
    let out = baton().args(["check", "--config"]).arg(&good).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("ok (2 trunk profiles: twilio, teams)"), "{text}");

    let bad = write(
        "bad-profiles.toml",
        "call_hook = \"http://127.0.0.1:9/call\"\n[[profile]]\nname = \"x\"\nsources = [\"10.0.0.0/40\"]\n\
         plus = \"double\"\nreferred_by = \"\"\nbye_after_success = \"wait:soon\"\n",
    );
    let doc = write("with-config.json", r#"[{"verb": "play", "url": "x.wav"}, {"verb": "sip:refer", "referTo": "a"}]"#);
    let out = baton().args(["check", "--config"]).arg(&bad).arg(&doc).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "profile \"x\": sources: \"10.0.0.0/40\": the prefix length must be a number from 0 to 32",
        "profile \"x\": plus: \"double\": must be \"keep\", \"add\" or \"strip\"",
        "profile \"x\": referred_by: must be \"transferee\", \"none\" or an address",
        "profile \"x\": bye_after_success: \"wait:soon\": must be",
        "verb 0 (play): play: needs media",
    ] {
        assert!(text.contains(want), "{want:?} in\n{text}");
    }
    // Under `--media skip` the same document loads.
    let out = baton().args(["check", "--media", "skip"]).arg(&doc).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn config_prints_profiles_that_read_back() {
    let file = write("profiles-effective.toml", PROFILES);
    let out = baton().args(["config", "--config"]).arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("[[profile]]\nname = \"twilio\""), "{text}");
    assert!(text.contains("media = \"refuse\""), "{text}");
    let again = write("profiles-again.toml", &text);
    let out = baton().args(["config", "--config"]).arg(&again).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), text);
}
