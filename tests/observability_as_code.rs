#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Observability as code: alert rules, Prometheus config, Grafana dashboards
//! and runbook stay valid and consistent.
//!
//! - promtool checks and unit tests (skipped when promtool is missing, except
//!   with `CI=true`: `tests/common`'s skip rule; `apt-get install prometheus`
//!   provides it);
//! - grafana/dashboard-linter rules on every dashboard JSON, with the
//!   exclusions of the `.lint` file beside them;
//! - every alert has a `severity` and a `runbook_url` whose anchor is a
//!   heading of `docs/RUNBOOK.md`;
//! - every rule file is loaded by `conf/prometheus.yml`.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const RULES: &str = "alerting/alert_rules.yml";
/// Every rule file, recording rules first (the alerts use their series).
const RULE_FILES: [&str; 2] = ["alerting/recording_rules.yml", RULES];
const RULE_TESTS_DIR: &str = "alerting/tests";
const PROMETHEUS_CONFIG: &str = "conf/prometheus.yml";
const DASHBOARDS_DIR: &str = "conf/grafana/dashboards";
const LINT_EXCLUSIONS: &str = "conf/grafana/dashboards/.lint";
const RUNBOOK: &str = "docs/RUNBOOK.md";
const RUNBOOK_URL_PREFIX: &str = "https://github.com/veza/veza/blob/main/docs/RUNBOOK.md#";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Files of `dir` (relative to the crate root) ending in `ext`, sorted, as
/// paths relative to the crate root.
fn files_with_ext(dir: &str, ext: &str) -> Vec<String> {
    let abs = root().join(dir);
    let mut out: Vec<String> = fs::read_dir(&abs)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", abs.display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(ext))
        .map(|name| format!("{dir}/{name}"))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no *{ext} files in {dir}");
    out
}

// ---------------------------------------------------------------- promtool

fn run_promtool(promtool: &Path, args: &[&str]) {
    let output = Command::new(promtool)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run promtool {args:?}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "promtool {} failed ({})\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        args.join(" "),
        output.status
    );
}

#[test]
fn promtool_check_rules() {
    let Some(promtool) = common::tools::promtool() else {
        return;
    };
    let mut args = vec!["check", "rules"];
    args.extend(RULE_FILES);
    run_promtool(&promtool, &args);
}

#[test]
fn every_rule_file_is_checked_and_loaded_by_prometheus() {
    let on_disk: BTreeSet<String> = files_with_ext("alerting", ".yml").into_iter().collect();
    let listed: BTreeSet<String> = RULE_FILES.iter().map(|f| (*f).to_owned()).collect();
    assert_eq!(on_disk, listed, "alerting/*.yml and RULE_FILES differ");
    let config = read(PROMETHEUS_CONFIG);
    for file in RULE_FILES {
        assert!(
            config.contains(&format!("  - ../{file}\n")),
            "{PROMETHEUS_CONFIG} rule_files lacks ../{file}"
        );
    }
}

#[test]
fn promtool_test_rules() {
    let Some(promtool) = common::tools::promtool() else {
        return;
    };
    let tests = files_with_ext(RULE_TESTS_DIR, ".yml");
    let mut args = vec!["test", "rules"];
    args.extend(tests.iter().map(String::as_str));
    run_promtool(&promtool, &args);
}

#[test]
fn promtool_check_config() {
    let Some(promtool) = common::tools::promtool() else {
        return;
    };
    run_promtool(&promtool, &["check", "config", PROMETHEUS_CONFIG]);
}

// ---------------------------------------------------------------- dashboards

fn is_datasource_ref(v: &Value) -> bool {
    match v {
        Value::String(s) => s == "${datasource}" || s == "$datasource",
        Value::Object(_) => matches!(
            v.get("uid").and_then(Value::as_str),
            Some("${datasource}" | "$datasource")
        ),
        _ => false,
    }
}

/// Panels, including those nested in collapsed rows.
fn all_panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    let mut stack: Vec<&Value> = dashboard["panels"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    while let Some(p) = stack.pop() {
        if let Some(children) = p.get("panels").and_then(Value::as_array) {
            stack.extend(children.iter());
        }
        out.push(p);
    }
    out.reverse();
    out
}

/// Problems with the range selectors of `rate(`, `irate(` and `increase(`
/// calls: each must use `[$__rate_interval]`.
fn rate_interval_problems(expr: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for func in ["rate(", "increase("] {
        let mut from = 0;
        while let Some(pos) = expr[from..].find(func) {
            let open = from + pos + func.len();
            // Scan to the matching close paren, collecting range selectors.
            let mut depth = 1usize;
            let mut end = expr.len();
            for (i, c) in expr[open..].char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            end = open + i;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let args = &expr[open..end];
            let ranges: Vec<&str> = args
                .match_indices('[')
                .filter_map(|(i, _)| args[i..].find(']').map(|j| &args[i..=i + j]))
                .collect();
            if ranges.is_empty() {
                problems.push(format!("`{func}...)` has no range selector"));
            }
            for r in ranges {
                if r != "[$__rate_interval]" {
                    problems.push(format!("`{func}...{r})` must use [$__rate_interval]"));
                }
            }
            from = open;
        }
    }
    problems
}

/// Problems with the label matchers of an expression: there must be at least
/// one selector and every `{...}` must filter on `$job` and `$instance`.
fn selector_problems(expr: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let selectors: Vec<&str> = expr
        .match_indices('{')
        .filter_map(|(i, _)| expr[i..].find('}').map(|j| &expr[i..=i + j]))
        .collect();
    if selectors.is_empty() {
        problems.push("no label selector (needs job=~\"$job\" and instance=~\"$instance\")".into());
    }
    for s in selectors {
        for needed in [r#"job=~"$job""#, r#"instance=~"$instance""#] {
            if !s.contains(needed) {
                problems.push(format!("selector {s} lacks {needed}"));
            }
        }
    }
    problems
}

fn template_problems(dashboard: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let vars: Vec<&Value> = dashboard["templating"]["list"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let by_name = |name: &str| vars.iter().copied().find(|v| v["name"] == name);

    let datasource_vars: Vec<&&Value> = vars.iter().filter(|v| v["type"] == "datasource").collect();
    if datasource_vars.len() != 1 {
        problems.push(format!(
            "must have exactly one datasource variable, found {}",
            datasource_vars.len()
        ));
    }
    match by_name("datasource") {
        Some(v) if v["type"] == "datasource" && v["query"] == "prometheus" => {}
        Some(_) => problems
            .push("variable `datasource` must have type datasource and query prometheus".into()),
        None => problems.push("missing variable `datasource`".into()),
    }

    for name in ["job", "instance"] {
        let Some(v) = by_name(name) else {
            problems.push(format!("missing variable `{name}`"));
            continue;
        };
        if v["type"] != "query" {
            problems.push(format!("variable `{name}` must be of type query"));
        }
        if !is_datasource_ref(&v["datasource"]) {
            problems.push(format!(
                "variable `{name}` must use datasource ${{datasource}}"
            ));
        }
        if v["multi"] != true {
            problems.push(format!("variable `{name}` must be multi-select"));
        }
        if v["includeAll"] != true {
            problems.push(format!("variable `{name}` must include All"));
        }
        if v["allValue"] != ".+" {
            problems.push(format!("variable `{name}` must have allValue \".+\""));
        }
    }
    if let Some(v) = by_name("instance") {
        let query = match &v["query"] {
            Value::String(s) => s.clone(),
            q => q["query"].as_str().unwrap_or_default().to_owned(),
        };
        if !query.contains("$job") {
            problems.push(format!(
                "variable `instance` must depend on $job, query is {query:?}"
            ));
        }
    }
    problems
}

fn panel_problems(panel: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    if panel["type"] == "row" {
        return problems;
    }
    let title = panel["title"].as_str().unwrap_or_default();
    if title.trim().is_empty() {
        problems.push("has no title".into());
    }
    if panel["description"]
        .as_str()
        .unwrap_or_default()
        .trim()
        .is_empty()
    {
        problems.push("has no description".into());
    }
    if panel["fieldConfig"]["defaults"]["unit"]
        .as_str()
        .unwrap_or_default()
        .is_empty()
    {
        problems.push("has no unit (fieldConfig.defaults.unit)".into());
    }
    if !is_datasource_ref(&panel["datasource"]) {
        problems.push(format!(
            "datasource must be ${{datasource}}, is {}",
            panel["datasource"]
        ));
    }
    let targets = panel["targets"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if targets.is_empty() {
        problems.push("has no targets".into());
    }
    for t in targets {
        let ref_id = t["refId"].as_str().unwrap_or("?");
        if !t["datasource"].is_null() && !is_datasource_ref(&t["datasource"]) {
            problems.push(format!(
                "target {ref_id}: datasource must be ${{datasource}}"
            ));
        }
        let Some(expr) = t["expr"].as_str() else {
            problems.push(format!("target {ref_id}: no expr"));
            continue;
        };
        for p in selector_problems(expr)
            .into_iter()
            .chain(rate_interval_problems(expr))
        {
            problems.push(format!("target {ref_id}: {p} in `{expr}`"));
        }
    }
    problems
}

/// The `(dashboard title, panel title)` pairs exempt from target-instance-rule in a
/// grafana/dashboard-linter `.lint` file, and the problems with the file. Only that
/// rule is accepted, with a non-empty `reason` and entries naming both a dashboard
/// and a panel (a line-based reading of the YAML subset the linter documents).
fn lint_exclusions(text: &str) -> (BTreeSet<(String, String)>, Vec<String>) {
    #[derive(PartialEq)]
    enum Section {
        None,
        Reason,
        Entries,
    }
    let unquote = |s: &str| s.trim().trim_matches(|c| c == '"' || c == '\'').to_owned();
    let mut out = BTreeSet::new();
    let mut problems = Vec::new();
    let mut rule: Option<String> = None;
    let mut reason = String::new();
    let mut section = Section::None;
    // An entry being read: (dashboard, panel).
    type Entry = (Option<String>, Option<String>);
    let mut entry: Option<Entry> = None;
    let mut finish_entry =
        |entry: &mut Option<Entry>, problems: &mut Vec<String>| match entry.take() {
            Some((Some(d), Some(p))) => {
                out.insert((d, p));
            }
            Some(_) => problems.push("an entry must name a dashboard and a panel".into()),
            None => {}
        };
    let finish_rule = |rule: &Option<String>, reason: &str, problems: &mut Vec<String>| {
        if let Some(r) = rule
            && reason.trim().is_empty()
        {
            problems.push(format!("exclusion of {r} has no reason"));
        }
    };
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        match indent {
            0 if t == "exclusions:" => {}
            0 => problems.push(format!("unexpected line {t:?}")),
            2 => {
                finish_entry(&mut entry, &mut problems);
                finish_rule(&rule, &reason, &mut problems);
                let name = t.trim_end_matches(':').to_owned();
                if name != "target-instance-rule" {
                    problems.push(format!("exclusions of {name} are not supported"));
                }
                rule = Some(name);
                reason.clear();
                section = Section::None;
            }
            4 => {
                if let Some(v) = t.strip_prefix("reason:") {
                    let v = v.trim();
                    if !matches!(v, ">" | ">-" | "|" | "|-") {
                        reason = unquote(v);
                    }
                    section = Section::Reason;
                } else if t == "entries:" {
                    section = Section::Entries;
                } else {
                    problems.push(format!("unexpected line {t:?}"));
                }
            }
            _ if section == Section::Reason => {
                reason.push(' ');
                reason.push_str(t);
            }
            _ if section == Section::Entries => {
                let kv = match t.strip_prefix("- ") {
                    Some(kv) => {
                        finish_entry(&mut entry, &mut problems);
                        entry = Some((None, None));
                        kv
                    }
                    None => t,
                };
                let current = entry.get_or_insert((None, None));
                match kv.split_once(':') {
                    Some(("dashboard", v)) => current.0 = Some(unquote(v)),
                    Some(("panel", v)) => current.1 = Some(unquote(v)),
                    _ => problems.push(format!("unexpected entry line {t:?}")),
                }
            }
            _ => problems.push(format!("unexpected line {t:?}")),
        }
    }
    finish_entry(&mut entry, &mut problems);
    finish_rule(&rule, &reason, &mut problems);
    (out, problems)
}

#[test]
fn dashboards_pass_linter_rules() {
    let (exclusions, lint_problems) = lint_exclusions(&read(LINT_EXCLUSIONS));
    let mut unused_exclusions = exclusions.clone();
    let mut failures: Vec<String> = lint_problems
        .into_iter()
        .map(|p| format!("{LINT_EXCLUSIONS}: {p}"))
        .collect();
    let mut uids = BTreeSet::new();
    for rel in files_with_ext(DASHBOARDS_DIR, ".json") {
        let dashboard: Value = serde_json::from_str(&read(&rel))
            .unwrap_or_else(|e| panic!("{rel}: invalid JSON: {e}"));
        let name = format!(
            "{rel} ({})",
            dashboard["title"].as_str().unwrap_or("untitled")
        );
        match dashboard["uid"].as_str() {
            Some(uid) if !uid.is_empty() => {
                if !uids.insert(uid.to_owned()) {
                    failures.push(format!("{name}: duplicate uid {uid}"));
                }
            }
            _ => failures.push(format!("{name}: no uid")),
        }
        for p in template_problems(&dashboard) {
            failures.push(format!("{name}: {p}"));
        }
        let panels = all_panels(&dashboard);
        if panels.is_empty() {
            failures.push(format!("{name}: no panels"));
        }
        let dashboard_title = dashboard["title"].as_str().unwrap_or_default();
        for panel in panels {
            let id = &panel["id"];
            let title = panel["title"].as_str().unwrap_or("<untitled>");
            let key = (dashboard_title.to_owned(), title.to_owned());
            let excluded = exclusions.contains(&key);
            for p in panel_problems(panel) {
                if excluded && p.contains(r#"lacks instance=~"$instance""#) {
                    unused_exclusions.remove(&key);
                    continue;
                }
                failures.push(format!("{name}: panel {id} {title:?}: {p}"));
            }
        }
    }
    for (dashboard, panel) in unused_exclusions {
        failures.push(format!(
            "{LINT_EXCLUSIONS}: the target-instance-rule exclusion of {dashboard:?} / {panel:?} excuses nothing"
        ));
    }
    assert!(
        failures.is_empty(),
        "dashboard lint failures:\n  {}",
        failures.join("\n  ")
    );
}

// ---------------------------------------------------------------- runbook

/// GitHub's heading anchor: lower case, punctuation other than `-` and `_`
/// dropped, spaces turned into `-`.
fn github_anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn runbook_anchors() -> BTreeSet<String> {
    let mut in_code = false;
    let mut anchors = BTreeSet::new();
    for line in read(RUNBOOK).lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if !in_code && line.starts_with('#') {
            let text = line.trim_start_matches('#');
            if text.starts_with(' ') {
                anchors.insert(github_anchor(text));
            }
        }
    }
    anchors
}

struct Alert {
    name: String,
    severity: Option<String>,
    runbook_url: Option<String>,
}

/// Minimal line-based reading of the rules file: `- alert: Name` starts an
/// alert (a `- record:` ends it); `severity:` and `runbook_url:` lines are
/// attributed to the current alert.
fn alerts() -> Vec<Alert> {
    let unquote = |s: &str| s.trim().trim_matches(|c| c == '"' || c == '\'').to_owned();
    let mut out: Vec<Alert> = Vec::new();
    let mut in_alert = false;
    for line in read(RULES).lines() {
        let t = line.trim();
        if t.starts_with('#') {
            continue;
        }
        if let Some(name) = t.strip_prefix("- alert:") {
            out.push(Alert {
                name: unquote(name),
                severity: None,
                runbook_url: None,
            });
            in_alert = true;
        } else if t.starts_with("- record:") {
            in_alert = false;
        } else if let (true, Some(current)) = (in_alert, out.last_mut()) {
            if let Some(v) = t.strip_prefix("severity:") {
                current.severity = Some(unquote(v));
            } else if let Some(v) = t.strip_prefix("runbook_url:") {
                current.runbook_url = Some(unquote(v));
            }
        }
    }
    out
}

#[test]
fn alerts_have_severity_and_runbook_section() {
    let anchors = runbook_anchors();
    let alerts = alerts();
    assert!(!alerts.is_empty(), "no `- alert:` found in {RULES}");
    let mut failures = Vec::new();
    for a in &alerts {
        let is_camel = a
            .name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_uppercase())
            && a.name.chars().all(|c| c.is_ascii_alphanumeric());
        if !is_camel {
            failures.push(format!("{}: alert name must be CamelCase", a.name));
        }
        match a.severity.as_deref() {
            Some("critical" | "warning" | "info") => {}
            Some(s) => failures.push(format!(
                "{}: severity {s:?} is not critical, warning or info",
                a.name
            )),
            None => failures.push(format!("{}: no severity label", a.name)),
        }
        let Some(url) = &a.runbook_url else {
            failures.push(format!("{}: no runbook_url annotation", a.name));
            continue;
        };
        let Some(anchor) = url.strip_prefix(RUNBOOK_URL_PREFIX) else {
            failures.push(format!(
                "{}: runbook_url {url} does not start with {RUNBOOK_URL_PREFIX}",
                a.name
            ));
            continue;
        };
        if anchor != a.name.to_lowercase() {
            failures.push(format!(
                "{}: runbook anchor #{anchor} should be #{}",
                a.name,
                a.name.to_lowercase()
            ));
        }
        if !anchors.contains(anchor) {
            failures.push(format!(
                "{}: runbook_url anchor #{anchor} is not a heading of {RUNBOOK} (headings: {anchors:?})",
                a.name
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "alert rule failures:\n  {}",
        failures.join("\n  ")
    );
}

#[test]
fn linters_catch_bad_queries() {
    // The hand-written checks above must reject what they are meant to reject.
    assert_eq!(
        rate_interval_problems(r#"rate(x{job=~"$job"}[5m])"#).len(),
        1
    );
    assert_eq!(rate_interval_problems("irate(x[1m])").len(), 1);
    assert!(rate_interval_problems("sum(increase(x[$__rate_interval]))").is_empty());
    assert!(!selector_problems(r#"up{job=~"$job"}"#).is_empty());
    assert!(!selector_problems("process_open_fds").is_empty());
    assert!(selector_problems(r#"a{job=~"$job",instance=~"$instance"}"#).is_empty());
    assert_eq!(
        github_anchor(" PoolExhaustionImminent"),
        "poolexhaustionimminent"
    );
    assert_eq!(github_anchor(" Health endpoints"), "health-endpoints");
    let (ok, problems) = lint_exclusions(
        "exclusions:\n  target-instance-rule:\n    reason: >-\n      per job\n    entries:\n      - dashboard: d\n        panel: \"p, q\"\n",
    );
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(
        ok.into_iter().collect::<Vec<_>>(),
        vec![("d".to_owned(), "p, q".to_owned())]
    );
    let (_, problems) = lint_exclusions(
        "exclusions:\n  target-instance-rule:\n    entries:\n      - dashboard: d\n",
    );
    assert_eq!(problems.len(), 2, "{problems:?}");
    let (_, problems) =
        lint_exclusions("exclusions:\n  target-job-rule:\n    reason: no job label\n");
    assert_eq!(problems.len(), 1, "{problems:?}");
}
