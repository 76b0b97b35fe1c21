//! Hooks that could not be delivered: one JSON line each, with everything needed to send
//! them again (`baton replay FILE`). The file is created on the first dead letter.

use super::quiet::Quiet;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// During an outage every hook fails: say so once, then at most this often.
const LOG_EVERY: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub call_sid: String,
    /// The URL as sent (a GET's fields are in its query string).
    pub url: String,
    pub method: String,
    /// Headers as sent, without the signature (a replay signs anew).
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    /// A GET's payload as JSON: what `Jambonz-Signature` signs on a replay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    pub attempts: u32,
    pub last_error: String,
    /// Unix time of the last attempt, in seconds.
    pub at: u64,
}

pub struct DeadLetters {
    path: PathBuf,
    file: Mutex<Option<File>>,
    quiet: Quiet,
}

impl DeadLetters {
    pub fn new(path: PathBuf) -> DeadLetters {
        DeadLetters { path, file: Mutex::new(None), quiet: Quiet::new(LOG_EVERY) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one letter; when even that fails, the letter goes to the log in full.
    pub fn append(&self, letter: &DeadLetter) {
        let line = match serde_json::to_string(letter) {
            Ok(l) => l,
            Err(e) => return tracing::error!(error = %e, ?letter, "hook lost: cannot encode dead letter"),
        };
        let written = self.file.lock().map_err(|_| std::io::Error::other("lock poisoned")).and_then(|mut f| {
            if f.is_none() {
                // Letters hold hook credentials (Basic auth) and call data: owner only.
                let file = OpenOptions::new().create(true).append(true).mode(0o600).open(&self.path)?;
                file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
                *f = Some(file);
            }
            match f.as_mut() {
                Some(file) => writeln!(file, "{line}").and_then(|_| file.flush()),
                None => Err(std::io::Error::other("dead-letter file not open")),
            }
        });
        match written {
            Ok(()) => self.report(letter),
            Err(e) => tracing::error!(error = %e, %line, "hook lost: cannot write the dead-letter file"),
        }
    }

    fn report(&self, letter: &DeadLetter) {
        if let Some(count) = self.quiet.event() {
            tracing::warn!(count, url = %letter.url, error = %letter.last_error, file = %self.path.display(),
                           "hooks dead-lettered (replay them with `baton replay FILE`)");
        }
    }
}

/// Reads a dead-letter file; a bad line is reported with its number.
pub fn read(path: &Path) -> Result<Vec<DeadLetter>, String> {
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| format!("{}: {e}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(serde_json::from_str(&line).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let path = std::env::temp_dir().join(format!("baton-dl-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let dl = DeadLetters::new(path.clone());
        let letter = DeadLetter {
            call_sid: "c".into(),
            url: "http://h/x".into(),
            method: "POST".into(),
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: Some("{}".into()),
            payload: None,
            attempts: 3,
            last_error: "HTTP 500".into(),
            at: 1,
        };
        dl.append(&letter);
        dl.append(&letter);
        assert_eq!(read(&path).unwrap(), vec![letter.clone(), letter]);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "letters hold credentials: readable by the owner only");
        std::fs::write(&path, "{\"nope\": 1}\n").unwrap();
        assert!(read(&path).unwrap_err().contains(":1:"));
        let _ = std::fs::remove_file(&path);
    }
}
