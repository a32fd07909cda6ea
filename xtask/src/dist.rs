//! `cargo xtask dist [--out DIR] [--only NAME...]`: one folder with what a
//! release ships, each artifact that can run here run first, and a
//! `SHA256SUMS` list over all of it.
//!
//! - `component`: the component `port-host` embeds, and the WIT it exports
//!   (`wit/`, with the pinned `wasi` packages under `wit/deps/`);
//! - `port-host`: the CLI for this machine's target, and for
//!   aarch64-unknown-linux-gnu and x86_64-pc-windows-gnu, built and run
//!   (the main job, a check of a held port, a reservation, the test suite)
//!   under qemu-user and wine by `.ci/cross`, which also checks the macOS
//!   targets (they link no binary here: no macOS SDK);
//! - `wheels`: every wheel `python/wheels` builds and checks (manylinux2014
//!   x86_64 and aarch64, Windows, macOS);
//! - `npm`: the Node package's tarball (`npm pack`, after `npm ci` and its
//!   suite), installed into an empty project and asked for a port.
//!
//! Each step is the script that CI or a developer runs for it, so the
//! release is what was tested. The folder is made anew on each run.

use sha2::{Digest, Sha256};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What `--only` may name, in the order they are made.
const PARTS: [&str; 4] = ["component", "port-host", "wheels", "npm"];

/// The targets `.ci/cross` builds port-host for, with the binary's name.
const CROSS_BINARIES: [(&str, &str); 2] = [
    ("aarch64-unknown-linux-gnu", "port-host"),
    ("x86_64-pc-windows-gnu", "port-host.exe"),
];

pub fn run(root: &Path, args: impl Iterator<Item = String>) -> Result<(), String> {
    let usage = "usage: cargo xtask dist [--out DIR] [--only component|port-host|wheels|npm ...]";
    let mut args = args.peekable();
    let (mut out, mut only) = (None, Vec::new());
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--out" => out = Some(PathBuf::from(args.next().ok_or(usage)?)),
            "--only" => {
                while let Some(part) = args.next_if(|next| !next.starts_with("--")) {
                    if !PARTS.contains(&part.as_str()) {
                        return Err(format!("'{part}' is no part of a release; {usage}"));
                    }
                    only.push(part);
                }
            }
            other => return Err(format!("unknown argument '{other}'; {usage}")),
        }
    }
    let wanted = |part: &str| only.is_empty() || only.iter().any(|p| p == part);
    let version = package_version(&root.join("host-example/Cargo.toml"))?;
    let out = out.unwrap_or_else(|| root.join(format!("target/dist/hbutils-port-{version}")));
    if out.exists() {
        fs::remove_dir_all(&out).map_err(|e| format!("clearing {}: {e}", out.display()))?;
    }
    fs::create_dir_all(&out).map_err(|e| format!("making {}: {e}", out.display()))?;

    if wanted("component") {
        let wasm = crate::strip_component_names(&crate::build(root)?)?;
        write(&out.join("hbutils_port.wasm"), &wasm)?;
        copy_tree(&root.join("wit"), &out.join("wit"))?;
    }
    if wanted("port-host") {
        let host = host_target()?;
        cargo(root, &["build", "--release", "--locked", "-p", "port-host"])?;
        let native = root.join("target/release/port-host");
        copy(&native, &out.join(format!("port-host-{version}-{host}")))?;
        script(root, ".ci/cross", &[])?;
        for (target, binary) in CROSS_BINARIES {
            let built = root
                .join("target")
                .join(target)
                .join("release")
                .join(binary);
            let name = match binary.strip_suffix(".exe") {
                Some(_) => format!("port-host-{version}-{target}.exe"),
                None => format!("port-host-{version}-{target}"),
            };
            copy(&built, &out.join(name))?;
        }
    }
    if wanted("wheels") {
        script(root, "python/wheels", &[])?;
        copy_tree(&root.join("target/dist/wheels"), &out.join("wheels"))?;
    }
    if wanted("npm") {
        let js = root.join("js");
        run_in(&js, "npm", &["ci", "--no-audit", "--no-fund"])?;
        run_in(&js, "npm", &["test"])?;
        run_in(&js, "npm", &["pack"])?;
        let tarball = format!("hbutils-port-{}.tgz", package_json_version(&js)?);
        let packed = out.join(&tarball);
        copy(&js.join(&tarball), &packed)?;
        remove(&js.join(&tarball))?;
        installs_and_answers(root, &packed)?;
    }

    let sums = checksums(&out)?;
    write(&out.join("SHA256SUMS"), sums.as_bytes())?;
    println!("{}:", out.display());
    print!("{sums}");
    Ok(())
}

/// `version = "…"` of a manifest's `[package]`.
fn package_version(manifest: &Path) -> Result<String, String> {
    let text =
        fs::read_to_string(manifest).map_err(|e| format!("reading {}: {e}", manifest.display()))?;
    text.lines()
        .find_map(|line| {
            let value = line.strip_prefix("version = \"")?;
            value.strip_suffix('"').map(str::to_owned)
        })
        .ok_or_else(|| format!("{} names no version", manifest.display()))
}

/// js/package.json's version.
fn package_json_version(js: &Path) -> Result<String, String> {
    let text = fs::read_to_string(js.join("package.json"))
        .map_err(|e| format!("reading js/package.json: {e}"))?;
    text.lines()
        .find_map(|line| {
            let value = line.trim().strip_prefix("\"version\": \"")?;
            value.strip_suffix("\",").map(str::to_owned)
        })
        .ok_or_else(|| "js/package.json names no version".into())
}

/// The tarball installed by npm into an empty project, as a user installs
/// it, and asked for a port.
fn installs_and_answers(root: &Path, tarball: &Path) -> Result<(), String> {
    let project = root.join("target/dist/npm-check");
    if project.exists() {
        fs::remove_dir_all(&project).map_err(|e| format!("clearing {}: {e}", project.display()))?;
    }
    fs::create_dir_all(&project).map_err(|e| format!("making {}: {e}", project.display()))?;
    write(
        &project.join("package.json"),
        b"{\"private\": true, \"type\": \"module\"}\n",
    )?;
    let tarball = tarball.display().to_string();
    run_in(
        &project,
        "npm",
        &["install", "--no-audit", "--no-fund", &tarball],
    )?;
    let check = "import { getFreePort, isFreePort } from 'hbutils-port'; \
                 const port = getFreePort(); \
                 if (!isFreePort(port)) throw new Error(`${port} read busy`); \
                 console.log(`the installed tarball answered: port ${port} is free`);";
    run_in(&project, "node", &["--input-type=module", "-e", check])
}

/// This machine's target triple, as rustc names it.
fn host_target() -> Result<String, String> {
    let output = Command::new("rustc")
        .arg("-vV")
        .output()
        .map_err(|e| format!("cannot run rustc: {e}"))?;
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: ").map(str::to_owned))
        .ok_or_else(|| "rustc -vV names no host".into())
}

fn cargo(root: &Path, args: &[&str]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run_in(root, &cargo, args)
}

fn script(root: &Path, path: &str, args: &[&str]) -> Result<(), String> {
    let mut all = vec![path];
    all.extend_from_slice(args);
    run_in(root, "bash", &all)
}

fn run_in(dir: &Path, program: &str, args: &[&str]) -> Result<(), String> {
    println!("== {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(dir)
        .status()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{program} {} failed ({status})", args.join(" ")))
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    fs::write(path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))
}

fn copy(from: &Path, to: &Path) -> Result<(), String> {
    fs::copy(from, to)
        .map(drop)
        .map_err(|e| format!("copying {} to {}: {e}", from.display(), to.display()))
}

fn remove(path: &Path) -> Result<(), String> {
    fs::remove_file(path).map_err(|e| format!("removing {}: {e}", path.display()))
}

fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    fs::create_dir_all(to).map_err(|e| format!("making {}: {e}", to.display()))?;
    let entries = fs::read_dir(from).map_err(|e| format!("reading {}: {e}", from.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| e.to_string())?;
        let path = entry.path();
        let target = to.join(entry.file_name());
        if path.is_dir() {
            copy_tree(&path, &target)?;
        } else {
            copy(&path, &target)?;
        }
    }
    Ok(())
}

/// `sha256sum`'s format (hash, two spaces, path), every file under `dir`
/// in path order.
fn checksums(dir: &Path) -> Result<String, String> {
    let mut files = Vec::new();
    walk(dir, dir, &mut files)?;
    files.sort();
    let mut sums = String::new();
    for relative in files {
        let bytes = fs::read(dir.join(&relative))
            .map_err(|e| format!("reading {}: {e}", relative.display()))?;
        let hash = Sha256::digest(&bytes);
        let hex: String = hash.iter().map(|byte| format!("{byte:02x}")).collect();
        sums.push_str(&format!("{hex}  {}\n", relative.display()));
    }
    Ok(sums)
}

fn walk(root: &Path, dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.is_dir() {
            walk(root, &path, files)?;
        } else if path.file_name().is_some_and(|name| name != "SHA256SUMS") {
            let relative = path.strip_prefix(root).map_err(|e| e.to_string())?;
            files.push(relative.to_path_buf());
        }
    }
    Ok(())
}
