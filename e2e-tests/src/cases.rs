//! The table of end-to-end cases: one folder per case under
//! `e2e-tests/cases/`, run here through waPC and by `e2e.bats` under kwctl,
//! with the same expectations.
//!
//! A case folder holds `request.json` (an AdmissionReview or a bare
//! AdmissionRequest), optionally `settings.yml`, `session.yml` (a kwctl
//! replay session; `[]` when no host call is expected) and `expect.json`.

use anyhow::{Context, Result};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use wasm_host::replay::{self, Replay};
use wasm_host::{self as engine, Policy, ValidationResponse};

/// `expect.json`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Expect {
    /// What the case is about, shown when it fails.
    #[serde(default)]
    pub description: String,
    /// `false`: `validate_settings` must refuse the settings with
    /// exactly `settingsMessage`; nothing is evaluated.
    #[serde(default = "yes")]
    pub settings_valid: bool,
    #[serde(default)]
    pub settings_message: Option<String>,
    #[serde(default)]
    pub allowed: Option<bool>,
    /// The exact JSON patch, or `null` for no mutation.
    #[serde(default)]
    pub patch: Option<Value>,
    /// Substrings each found in some warning.
    #[serde(default)]
    pub warnings: Vec<String>,
    #[serde(default)]
    pub no_warnings: bool,
    /// Substrings of the rejection message.
    #[serde(default)]
    pub message: Vec<String>,
    /// Audit annotations that must be present with these values.
    #[serde(default)]
    pub audit_annotations: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub dir: PathBuf,
    pub request: Value,
    pub settings: Value,
    pub session: Vec<replay::Recorded>,
    pub expect: Expect,
}

fn read_json(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))
}

impl Case {
    pub fn load(dir: &Path) -> Result<Case> {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let request = engine::admission_request(read_json(&dir.join("request.json"))?);
        let settings_path = dir.join("settings.yml");
        let settings = if settings_path.exists() {
            let text = std::fs::read_to_string(&settings_path)?;
            let yaml: serde_yaml::Value = serde_yaml::from_str(&text)
                .with_context(|| format!("{}: not YAML", settings_path.display()))?;
            serde_json::to_value(yaml)?
        } else {
            Value::Object(Default::default())
        };
        let session = replay::load_session(&dir.join("session.yml"))?;
        let expect_path = dir.join("expect.json");
        let expect: Expect = serde_json::from_value(read_json(&expect_path)?)
            .with_context(|| format!("{}", expect_path.display()))?;
        Ok(Case {
            name,
            dir: dir.to_path_buf(),
            request,
            settings,
            session,
            expect,
        })
    }

    /// Runs the case; returns every way it failed (empty: it passed).
    pub fn run(&self, policy: &Policy) -> Result<Vec<String>> {
        let settings = policy.validate_settings(&self.settings)?;
        let mut failures = Vec::new();
        if settings.valid != self.expect.settings_valid {
            failures.push(format!(
                "settings valid: expected {}, got {} ({:?})",
                self.expect.settings_valid, settings.valid, settings.message
            ));
            return Ok(failures);
        }
        if !settings.valid {
            if let Some(want) = &self.expect.settings_message
                && settings.message.as_ref() != Some(want)
            {
                failures.push(format!(
                    "settings message:\n  expected {want:?}\n  got      {:?}",
                    settings.message
                ));
            }
            return Ok(failures);
        }
        // Only this evaluation's log events count.
        policy.take_logs();
        let (response, replay) = policy.validate(
            &self.request,
            &self.settings,
            Replay::new(self.session.clone()),
        )?;
        failures.extend(replay.problems());
        failures.extend(self.check(&response));
        // policy-server parses every log event a guest sends, whatever its
        // level, on the request's time: the policy sends none, on any path.
        let logs = policy.take_logs();
        if !logs.is_empty() {
            failures.push(format!("the policy sent log events: {logs:?}"));
        }
        Ok(failures)
    }

    pub fn check(&self, r: &ValidationResponse) -> Vec<String> {
        let e = &self.expect;
        let mut out = Vec::new();
        if let Some(allowed) = e.allowed
            && r.accepted != allowed
        {
            out.push(format!(
                "allowed: expected {allowed}, got {} (message {:?})",
                r.accepted, r.message
            ));
        }
        let patch = r
            .mutated_object
            .as_ref()
            .map(|m| engine::patch(&self.request["object"], m))
            .filter(|p| p.as_array().is_some_and(|a| !a.is_empty()));
        let want_patch = e.patch.clone().filter(|p| !p.is_null());
        if patch != want_patch {
            out.push(format!(
                "patch:\n  expected {}\n  got      {}",
                want_patch.map_or("none".into(), |p| p.to_string()),
                patch.map_or("none".into(), |p| p.to_string())
            ));
        }
        let warnings = r.warnings.clone().unwrap_or_default();
        for w in &e.warnings {
            if !warnings.iter().any(|got| got.contains(w)) {
                out.push(format!("no warning contains {w:?}; warnings: {warnings:?}"));
            }
        }
        if e.no_warnings && !warnings.is_empty() {
            out.push(format!("expected no warnings, got {warnings:?}"));
        }
        let message = r.message.clone().unwrap_or_default();
        for m in &e.message {
            if !message.contains(m) {
                out.push(format!("message does not contain {m:?}: {message:?}"));
            }
        }
        let audit = r.audit_annotations.clone().unwrap_or_default();
        for (k, v) in &e.audit_annotations {
            if audit.get(k) != Some(v) {
                out.push(format!(
                    "audit annotation {k}: expected {v:?}, got {:?}",
                    audit.get(k)
                ));
            }
        }
        out
    }
}

/// Every case folder under `dir`, sorted by name.
pub fn load_all(dir: &Path) -> Result<Vec<Case>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("expect.json").exists())
        .collect();
    dirs.sort();
    dirs.iter()
        .map(|d| Case::load(d).with_context(|| format!("case {}", d.display())))
        .collect()
}

pub fn default_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("cases")
}
