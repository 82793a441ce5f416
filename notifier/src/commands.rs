//! The commands an analytics engineer runs by hand: `contract push`, `contract check` (the CI
//! gate) and `check`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::GateFormat;
use crate::connection::{connect, db_error, Failure};
use crate::render;

/// `contract push PATH`: every document through load_contract, in one transaction.
pub async fn push(url: &str, path: &Path) -> Result<ExitCode, Failure> {
    let project = contract_documents(path)?;
    let (mut db, _) = connect(url).await?;
    let tx = db.transaction().await.map_err(|e| db_error(&e))?;
    let origins = load_project(&tx, &project).await?;
    let row = tx
        .query_one(
            "SELECT sources, tables, columns FROM drift_watch.contract_summary($1)",
            &[&origins],
        )
        .await
        .map_err(|e| db_error(&e))?;
    tx.commit().await.map_err(|e| db_error(&e))?;
    let (sources, tables, columns): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    let models = project
        .documents
        .iter()
        .filter(|(o, _)| o.ends_with(".sql"))
        .count();
    let files = project.documents.len() - models;
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let models = if models > 0 {
        format!(" and {models} model{}", plural(models))
    } else {
        String::new()
    };
    println!(
        "loaded {files} file{}{models}: {sources} sources, {tables} tables, {columns} columns",
        plural(files)
    );
    Ok(ExitCode::SUCCESS)
}

/// Replaces, inside `tx`, what the project held with its documents; returns their origins.
async fn load_project(
    tx: &tokio_postgres::Transaction<'_>,
    project: &Project,
) -> Result<Vec<String>, String> {
    // Files that moved or were deleted, or the YAML a manifest now replaces, must not linger.
    for prefix in &project.prefixes {
        tx.execute("SELECT drift_watch.forget_contracts_under($1)", &[prefix])
            .await
            .map_err(|e| db_error(&e))?;
    }
    let mut origins = Vec::new();
    for (origin, text) in &project.documents {
        tx.query_one("SELECT drift_watch.load_contract($1, $2)", &[origin, text])
            .await
            .map_err(|e| format!("{}; nothing was changed", db_error(&e)))?;
        origins.push(origin.clone());
    }
    Ok(origins)
}

/// (origin, text) of one document.
pub type Document = (String, String);

/// What a push loads: the documents, and the origin prefixes it owns (replaced as a whole).
pub struct Project {
    pub documents: Vec<Document>,
    pub prefixes: Vec<String>,
}

/// Folders of a dbt project that never hold the project's own sources: installed packages,
/// build output, logs.
const SKIPPED_DIRS: &[&str] = &["dbt_packages", "dbt_modules", "target", "logs"];

/// The documents to load. A project directory: every YAML file under its model-paths (from
/// `dbt_project.yml`, dbt's default `models`), origins prefixed by the project's name, so that
/// several projects can feed one audit database and pushing one replaces only its own origins.
/// A `manifest.json`: one document, origin `<project>/manifest.json` when the manifest names its
/// project (replacing that project's YAML origins). A single YAML file: its path as given.
pub fn contract_documents(path: &Path) -> Result<Project, String> {
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    if path.is_file() {
        let text = read(path)?;
        if path.extension().is_some_and(|e| e == "json") {
            #[derive(serde::Deserialize)]
            struct Manifest {
                #[serde(default)]
                metadata: Option<Metadata>,
            }
            #[derive(serde::Deserialize)]
            struct Metadata {
                #[serde(default)]
                project_name: Option<String>,
            }
            let project = serde_json::from_str::<Manifest>(&text)
                .ok()
                .and_then(|m| m.metadata)
                .and_then(|m| m.project_name)
                .filter(|n| !n.is_empty() && !n.contains('/'));
            if let Some(name) = project {
                return Ok(Project {
                    documents: vec![(format!("{name}/manifest.json"), text)],
                    prefixes: vec![format!("{name}/")],
                });
            }
        }
        let origin = path.to_string_lossy().to_string();
        return Ok(Project {
            documents: vec![(origin, text)],
            prefixes: Vec::new(),
        });
    }
    if !path.is_dir() {
        return Err(format!("{}: no such file or directory", path.display()));
    }
    #[derive(serde::Deserialize)]
    struct DbtProject {
        #[serde(default)]
        name: Option<String>,
        #[serde(rename = "model-paths", alias = "source-paths", default)]
        model_paths: Option<Vec<String>>,
    }
    let project_file = path.join("dbt_project.yml");
    let (name, model_paths) = if project_file.is_file() {
        let project: DbtProject = serde_saphyr::from_str(&read(&project_file)?).map_err(|e| {
            format!(
                "{}: {}",
                project_file.display(),
                e.to_string().lines().next().unwrap_or("")
            )
        })?;
        (
            project.name,
            project.model_paths.unwrap_or_else(|| vec!["models".into()]),
        )
    } else {
        (None, vec!["models".into()])
    };
    let name = name
        .or_else(|| {
            path.canonicalize()
                .ok()?
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
        })
        .filter(|n| !n.is_empty() && !n.contains('/'))
        .ok_or_else(|| format!("{}: cannot tell the dbt project's name", path.display()))?;
    let mut documents = Vec::new();
    let mut files = Vec::new();
    for mp in &model_paths {
        collect_yaml(&path.join(mp), &mut files)?;
    }
    files.sort();
    files.dedup();
    for file in files {
        let relative = file
            .strip_prefix(path)
            .unwrap_or(&file)
            .to_string_lossy()
            .replace('\\', "/");
        documents.push((format!("{name}/{relative}"), read(&file)?));
    }
    if !documents
        .iter()
        .any(|(origin, _)| !origin.ends_with(".sql"))
    {
        return Err(format!(
            "{}: no YAML files found under {}",
            path.display(),
            model_paths.join(", ")
        ));
    }
    Ok(Project {
        documents,
        prefixes: vec![format!("{name}/")],
    })
}

fn collect_yaml(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if path.is_dir() {
            if !name.starts_with('.') && !SKIPPED_DIRS.contains(&name.as_str()) {
                collect_yaml(&path, out)?;
            }
        } else if path
            .extension()
            .is_some_and(|e| e == "yml" || e == "yaml" || e == "sql")
        {
            // Properties files (sources, exposures) and models (lineage: their source() and
            // ref() calls, and the SQL that says which columns they read).
            out.push(path);
        }
    }
    Ok(())
}

/// One row of `drift_diff`.
type DiffRow = [String; 7];

async fn drift_rows(
    tx: &tokio_postgres::Transaction<'_>,
    target: Option<&str>,
) -> Result<Vec<DiffRow>, String> {
    let rows = tx
        .query(
            "SELECT source_name, schema_name || '.' || table_name, coalesce(column_name, ''),
                    change, coalesce(contract_type, ''), coalesce(live_type, ''),
                    coalesce(detail, '')
               FROM drift_watch.drift_diff($1)
              ORDER BY 2, 3, 4, 1",
            &[&target],
        )
        .await
        .map_err(|e| db_error(&e))?;
    Ok(rows
        .iter()
        .map(|r| std::array::from_fn(|i| r.get::<_, String>(i)))
        .collect())
}

/// `contract check PATH --target T`: exit 0 when merging leaves no drift, 1 when it leaves
/// some, 2 on any error. Runs in one transaction that is always rolled back.
pub async fn gate(url: &str, path: &Path, target: Option<&str>, format: GateFormat) -> ExitCode {
    match gate_inner(url, path, target, format).await {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

async fn gate_inner(
    url: &str,
    path: &Path,
    target: Option<&str>,
    format: GateFormat,
) -> Result<ExitCode, String> {
    let project = contract_documents(path)?;
    let (mut db, _) = connect(url).await.map_err(|f| f.to_string())?;
    let tx = db.transaction().await.map_err(|e| db_error(&e))?;
    let key = |r: &DiffRow| (r[1].clone(), r[2].clone(), r[3].clone());
    let before = drift_rows(&tx, target).await?;
    load_project(&tx, &project).await?;
    let after = drift_rows(&tx, target).await?;
    tx.rollback().await.map_err(|e| db_error(&e))?;
    // Undocumented columns are coverage, not drift, and never fail the gate; except a column
    // this change stops documenting while it is live (coverage lost by the change itself).
    let before_columns: std::collections::HashSet<_> = before
        .iter()
        .map(|r| (r[1].clone(), r[2].clone()))
        .collect();
    let is_drift = |r: &&DiffRow| {
        r[3] != "undocumented" || !before_columns.contains(&(r[1].clone(), r[2].clone()))
    };
    let before_keys: std::collections::HashSet<_> = before.iter().map(key).collect();
    let after_keys: std::collections::HashSet<_> = after.iter().map(key).collect();
    let left: Vec<&DiffRow> = after.iter().filter(is_drift).collect();
    let fixed: Vec<&DiffRow> = before
        .iter()
        .filter(|r| r[3] != "undocumented")
        .filter(|r| !after_keys.contains(&key(r)))
        .collect();
    let introduced = left
        .iter()
        .filter(|r| !before_keys.contains(&key(r)))
        .count();
    let undocumented = after.iter().filter(|r| r[3] == "undocumented").count();
    let label = target.unwrap_or("the audit database");
    match format {
        GateFormat::Text => {
            println!(
                "contract check of {} against {label}: {} change{} left after merging ({introduced} introduced by this change), {} fixed, {undocumented} undocumented column{}",
                path.display(),
                left.len(),
                if left.len() == 1 { "" } else { "s" },
                fixed.len(),
                if undocumented == 1 { "" } else { "s" },
            );
            let header = [
                "source",
                "table",
                "column",
                "change",
                "contract type",
                "live type",
                "detail",
            ];
            if !left.is_empty() {
                println!("\nleft after merging:");
                print_table(
                    &header,
                    &left.iter().map(|r| (*r).clone()).collect::<Vec<_>>(),
                );
            }
            if !fixed.is_empty() {
                println!("\nfixed by merging:");
                print_table(
                    &header,
                    &fixed.iter().map(|r| (*r).clone()).collect::<Vec<_>>(),
                );
            }
        }
        GateFormat::Markdown => print!(
            "{}",
            render::gate_markdown(label, &left, &fixed, introduced, undocumented)
        ),
    }
    Ok(if left.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `check [TARGET]`: one run now, and its deltas as a table.
pub async fn check(url: &str, target: Option<&str>) -> Result<ExitCode, Failure> {
    let (db, _) = connect(url).await?;
    let run: i64 = db
        .query_one("SELECT drift_watch.run_check($1)", &[&target])
        .await
        .map_err(|e| db_error(&e))?
        .get(0);
    let r = db
        .query_one(
            "SELECT status, error, deltas_new, deltas_resolved, deltas_open
               FROM drift_watch.runs WHERE run_id = $1",
            &[&run],
        )
        .await
        .map_err(|e| db_error(&e))?;
    let status: String = r.get(0);
    let label = target.unwrap_or("(the audit database)");
    if status == "failed" {
        let error: Option<String> = r.get(1);
        println!(
            "check {run} of {label} FAILED: {}",
            error.unwrap_or_default()
        );
        return Ok(ExitCode::FAILURE);
    }
    let (new, resolved, open): (Option<i32>, Option<i32>, Option<i32>) =
        (r.get(2), r.get(3), r.get(4));
    println!(
        "check {run} of {label}: {} open ({} new, {} resolved)",
        open.unwrap_or(0),
        new.unwrap_or(0),
        resolved.unwrap_or(0)
    );
    let rows = db
        .query(
            "SELECT source_name, schema_name || '.' || table_name, coalesce(column_name, ''), change,
                    coalesce(contract_type, ''), coalesce(live_type, ''), coalesce(detail, '')
               FROM drift_watch.open_deltas WHERE target IS NOT DISTINCT FROM $1",
            &[&target],
        )
        .await
        .map_err(|e| db_error(&e))?;
    let table: Vec<[String; 7]> = rows
        .iter()
        .map(|r| std::array::from_fn(|i| r.get::<_, String>(i)))
        .collect();
    print_table(
        &[
            "source",
            "table",
            "column",
            "change",
            "contract type",
            "live type",
            "detail",
        ],
        &table,
    );
    Ok(ExitCode::SUCCESS)
}

fn print_table(header: &[&str; 7], rows: &[[String; 7]]) {
    if rows.is_empty() {
        println!("no drift");
        return;
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join(" | ")
            .trim_end()
            .to_string()
    };
    println!("{}", line(header.to_vec()));
    println!(
        "{}",
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("-+-")
    );
    for row in rows {
        println!("{}", line(row.iter().map(String::as_str).collect()));
    }
}
