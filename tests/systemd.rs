//! The systemd unit stays hardened and valid: `systemd-analyze security` rates its exposure at
//! or below `MAX_EXPOSURE`, and `systemd-analyze verify` has nothing to say about it.
//! Where `systemd-analyze` is not installed, both tests print a notice and pass.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The highest exposure score accepted (0.0 is fully locked down, 10.0 is unprotected).
const MAX_EXPOSURE: f64 = 1.5;

fn unit_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/feedwire.service")
}

/// Runs `systemd-analyze ARGS`, or returns `None` when it is not installed.
fn systemd_analyze(args: &[&std::ffi::OsStr], test: &str) -> Option<Output> {
    match Command::new("systemd-analyze")
        .args(args)
        .env("SYSTEMD_COLORS", "0")
        .env("SYSTEMD_PAGER", "")
        .output()
    {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("{test}: skipped, systemd-analyze is not installed");
            None
        }
        Err(e) => panic!("cannot run systemd-analyze: {e}"),
    }
}

/// The figure of "→ Overall exposure level for feedwire.service: 1.1 OK 🙂".
fn overall_exposure(report: &str) -> Option<f64> {
    let line = report
        .lines()
        .find(|l| l.contains("Overall exposure level"))?;
    let (_, after) = line.rsplit_once(".service:")?;
    after.split_whitespace().next()?.parse().ok()
}

#[test]
fn unit_exposure_is_at_most_1_5() {
    let unit = unit_path();
    let Some(out) = systemd_analyze(
        &[
            "security".as_ref(),
            "--offline=true".as_ref(),
            unit.as_os_str(),
        ],
        "unit_exposure_is_at_most_1_5",
    ) else {
        return;
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.trim().is_empty(), "warnings: {stderr}");
    let Some(exposure) = overall_exposure(&stdout) else {
        panic!("no overall exposure in the report:\n{stdout}");
    };
    assert!(
        exposure <= MAX_EXPOSURE,
        "exposure {exposure} is above {MAX_EXPOSURE}:\n{stdout}"
    );
}

#[test]
fn unit_verifies_cleanly() {
    // `verify` checks that ExecStart exists, so check a copy that starts the binary just built
    // instead of the installed /usr/local/bin/feedwire; everything else is the unit as shipped.
    let text = std::fs::read_to_string(unit_path()).expect("read systemd/feedwire.service");
    let installed = "ExecStart=/usr/local/bin/feedwire ";
    assert!(text.contains(installed), "the unit starts {installed}…");
    let built = format!("ExecStart=\"{}\" ", env!("CARGO_BIN_EXE_feedwire"));
    let dir = tempfile::tempdir().expect("temp dir");
    // The file name is the unit name, which verify checks too.
    let copy = dir.path().join("feedwire.service");
    std::fs::write(&copy, text.replace(installed, &built)).expect("write the copy");

    let Some(out) = systemd_analyze(
        &["verify".as_ref(), "--man=no".as_ref(), copy.as_os_str()],
        "unit_verifies_cleanly",
    ) else {
        return;
    };
    // verify exits 0 even after warnings such as an unknown key: clean means silent.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.trim().is_empty() && stderr.trim().is_empty(),
        "verify is not clean:\n{stdout}{stderr}"
    );
}

#[test]
fn exposure_figure_is_read_from_the_report() {
    let report = "  NAME  DESCRIPTION  EXPOSURE\n\n→ Overall exposure level for feedwire.service: 1.1 OK 🙂\n";
    assert_eq!(overall_exposure(report), Some(1.1));
    assert_eq!(overall_exposure("nothing here"), None);
}

#[test]
fn make_install_stages_the_service_and_uninstall_keeps_the_config() {
    use std::os::unix::fs::PermissionsExt;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dest = tempfile::tempdir().expect("temp dir");
    let make = |target: &str| {
        Command::new("make")
            .arg("-C")
            .arg(root)
            .arg(target)
            .arg(format!("DESTDIR={}", dest.path().display()))
            .arg(format!("BIN={}", env!("CARGO_BIN_EXE_feedwire")))
            .output()
    };
    let out = match make("install") {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("make_install_stages_the_service: skipped, make is not installed");
            return;
        }
        Err(e) => panic!("cannot run make: {e}"),
    };
    let log = |out: &Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    assert!(out.status.success(), "{}", log(&out));

    let staged = |p: &str| dest.path().join(p);
    let mode = |p: &str| {
        std::fs::metadata(staged(p))
            .unwrap_or_else(|e| panic!("{p}: {e}"))
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("usr/local/bin/feedwire"), 0o755);
    assert_eq!(mode("etc/systemd/system/feedwire.service"), 0o644);
    assert_eq!(mode("etc/feedwire/feedwire.toml"), 0o644);
    assert_eq!(mode("etc/feedwire/feedwire.env"), 0o600);
    let unit =
        std::fs::read_to_string(staged("etc/systemd/system/feedwire.service")).expect("unit");
    assert_eq!(
        unit,
        std::fs::read_to_string(unit_path()).expect("unit"),
        "with the default PREFIX the unit is installed as it is"
    );
    let config = staged("etc/feedwire/feedwire.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    assert!(
        text.contains("\nstate_dir = \"/var/lib/feedwire\"\n"),
        "{text}"
    );
    let check = Command::new(env!("CARGO_BIN_EXE_feedwire"))
        .arg("--config")
        .arg(&config)
        .arg("check")
        .output()
        .expect("run feedwire check");
    assert!(check.status.success(), "{}", log(&check));

    // A second install keeps the config as edited.
    std::fs::write(&config, format!("{text}\n# edited\n")).expect("edit");
    let out = make("install").expect("make install");
    assert!(out.status.success(), "{}", log(&out));
    assert!(
        std::fs::read_to_string(&config)
            .expect("config")
            .ends_with("# edited\n")
    );

    let out = make("uninstall").expect("make uninstall");
    assert!(out.status.success(), "{}", log(&out));
    assert!(!staged("usr/local/bin/feedwire").exists());
    assert!(!staged("etc/systemd/system/feedwire.service").exists());
    assert!(config.exists(), "the config is kept");
}
