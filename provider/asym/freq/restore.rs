//! Getting original settings back, whatever happens: the process-wide restore table read by the SIGINT/SIGTERM/
//! SIGHUP handler and the `atexit` hook, and the state files that let the next load undo what a killed process left.
//!
//! The governor restores by itself when it releases (hold expired, last user gone). This module covers the rest:
//! - **Signals**: every sysfs attribute we may change is published, with its original value precomputed as bytes,
//!   in a fixed table of leaked, immutable sets; an `armed` flag per attribute says it currently differs from the
//!   original. The handler only does async-signal-safe things: atomic loads/swaps, `open`/`write`/`close`/`unlink`,
//!   `sigaction`, `raise`. It then chains the previous handler, or re-raises with the default action.
//! - **Normal exit without Drop** (statics are never dropped, `std::process::exit`): the same routine via `atexit`.
//! - **SIGKILL / crash**: a state file per governor (pid, process start time, originals of what was changed); the
//!   next governor created with the same state directory undoes it once that pid is dead.
//!
//! Sets are leaked on purpose: a handler may be reading one on another thread while its governor drops, and a few
//! hundred bytes per governor lifetime cost nothing.

use std::ffi::CString;
use std::fs;
use std::io::{self, Write};
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::Once;

/// One attribute and the bytes that restore it.
pub(crate) struct RestoreItem {
    path: CString,
    value: Box<[u8]>,
    armed: AtomicBool,
}

/// The attributes of one governor, in restore order, plus its state file.
pub(crate) struct RestoreSet {
    items: Box<[RestoreItem]>,
    state_file: Option<CString>,
    /// The process that changed the settings: a forked child exiting (or signalled) must not restore its parent's.
    pid: libc::pid_t,
}

const SLOTS: usize = 64;
static SETS: [AtomicPtr<RestoreSet>; SLOTS] = [const { AtomicPtr::new(ptr::null_mut()) }; SLOTS];

/// Bumped each time the signal/atexit path restored behind the governors' backs, so a process that survives the
/// signal (a chained handler that only sets a flag, e.g. Python's KeyboardInterrupt) re-applies and rewrites its
/// state file on the next run instead of trusting a stale cache.
pub(crate) static CLOBBER_EPOCH: AtomicU64 = AtomicU64::new(0);

/// A governor's published restore set. Dropping it unpublishes (the memory stays: see the module doc).
pub(crate) struct Registration {
    set: &'static RestoreSet,
    slot: Option<usize>,
}

fn cstring(p: &Path) -> Option<CString> {
    CString::new(p.as_os_str().as_bytes()).ok()
}

impl Registration {
    /// Publish `items` (path, original value), in the order a restore must write them. Returns the registration
    /// and whether it found a slot (without one, only Drop and the state file restore).
    pub(crate) fn new(items: &[(PathBuf, String)], state_file: Option<&Path>) -> (Registration, bool) {
        let items: Vec<RestoreItem> = items
            .iter()
            .map(|(p, v)| RestoreItem {
                path: cstring(p).unwrap_or_default(),
                value: v.as_bytes().into(),
                armed: AtomicBool::new(false),
            })
            .collect();
        let set: &'static RestoreSet = Box::leak(Box::new(RestoreSet {
            items: items.into(),
            state_file: state_file.and_then(cstring),
            pid: std::process::id() as libc::pid_t,
        }));
        let p = set as *const RestoreSet as *mut RestoreSet;
        let mut slot = None;
        for (i, s) in SETS.iter().enumerate() {
            // AcqRel: the set's contents happen-before any handler that loads the pointer with Acquire.
            if s.compare_exchange(ptr::null_mut(), p, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                slot = Some(i);
                break;
            }
        }
        let ok = slot.is_some();
        (Registration { set, slot }, ok)
    }

    /// Mark item `i` as differing (or not) from its original value.
    pub(crate) fn arm(&self, i: usize, on: bool) {
        // Release: pairs with the handler's swap; ordering with the sysfs write itself is not needed (the handler
        // writing an original value once too often is harmless).
        self.set.items[i].armed.store(on, Ordering::Release);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            SETS[i].store(ptr::null_mut(), Ordering::Release);
        }
    }
}

/// Write `value` to `path` with raw syscalls only (async-signal-safe). Errors are ignored: there is nobody to tell.
fn write_raw(path: &CString, value: &[u8]) {
    if path.as_bytes().is_empty() {
        return;
    }
    // SAFETY: `path` is a valid NUL-terminated string; open/write/close are async-signal-safe and touch no Rust
    // state; the buffer is valid for `len` bytes.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_TRUNC | libc::O_CLOEXEC);
        if fd < 0 {
            return;
        }
        let mut off = 0;
        while off < value.len() {
            let n = libc::write(fd, value[off..].as_ptr().cast(), value.len() - off);
            if n <= 0 {
                break;
            }
            off += n as usize;
        }
        libc::close(fd);
    }
}

/// Restore every armed attribute of every published set and remove their state files. Async-signal-safe.
pub(crate) fn restore_all_armed() {
    // SAFETY: getpid is async-signal-safe and has no preconditions.
    let me = unsafe { libc::getpid() };
    for s in SETS.iter() {
        let p = s.load(Ordering::Acquire);
        if p.is_null() {
            continue;
        }
        // SAFETY: published sets are leaked `&'static RestoreSet`s, never freed.
        let set = unsafe { &*p };
        if set.pid != me {
            continue;
        }
        for item in set.items.iter() {
            if item.armed.swap(false, Ordering::AcqRel) {
                write_raw(&item.path, &item.value);
            }
        }
        if let Some(f) = &set.state_file {
            // SAFETY: valid NUL-terminated path; unlink is async-signal-safe.
            unsafe { libc::unlink(f.as_ptr()) };
        }
    }
    CLOBBER_EPOCH.fetch_add(1, Ordering::AcqRel);
}

// ---------------------------------------------------------------------------------------------------------------
// Signal handlers and atexit

const SIGNALS: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

struct PrevActions(std::cell::UnsafeCell<[MaybeUninit<libc::sigaction>; 3]>);
// SAFETY: written only inside `INSTALL.call_once`, each entry before the handler for that signal is installed;
// read only by the handler afterwards.
unsafe impl Sync for PrevActions {}
static PREV: PrevActions = PrevActions(std::cell::UnsafeCell::new([MaybeUninit::uninit(); 3]));
static PREV_SET: [AtomicBool; 3] = [const { AtomicBool::new(false) }; 3];
static INSTALL: Once = Once::new();

extern "C" fn on_signal(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    restore_all_armed();
    let Some(i) = SIGNALS.iter().position(|&s| s == sig) else { return };
    if !PREV_SET[i].load(Ordering::Acquire) {
        return;
    }
    // SAFETY: PREV[i] was initialized before PREV_SET[i] was set (Release/Acquire) and is never written again.
    let prev = unsafe { (*PREV.0.get())[i].assume_init_ref() };
    let handler = prev.sa_sigaction;
    if handler == libc::SIG_IGN {
        return;
    }
    if handler == libc::SIG_DFL {
        // SAFETY: sigaction and raise are async-signal-safe; the signal is blocked while we run, so the re-raised
        // one is delivered with the default action (terminate) as soon as this handler returns.
        unsafe {
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigemptyset(&mut dfl.sa_mask);
            libc::sigaction(sig, &dfl, ptr::null_mut());
            libc::raise(sig);
        }
        return;
    }
    // Chain the previous handler with the arguments it expects.
    if prev.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous disposition was installed with SA_SIGINFO, so it is a three-argument handler.
        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
            unsafe { std::mem::transmute(handler) };
        f(sig, info, ctx);
    } else {
        // SAFETY: without SA_SIGINFO the previous handler is a one-argument `void (*)(int)`.
        let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(handler) };
        f(sig);
    }
}

/// At exit, and at dlclose of this library (glibc runs a DSO's atexit functions then): restore, and put the
/// previous signal dispositions back so no handler points into unmapped code.
extern "C" fn on_exit() {
    restore_all_armed();
    for (i, &sig) in SIGNALS.iter().enumerate() {
        if !PREV_SET[i].load(Ordering::Acquire) {
            continue;
        }
        // SAFETY: PREV[i] is initialized (PREV_SET[i]); sigaction with valid pointers. Only our own handler is
        // replaced: if the host installed another one since, it stays.
        unsafe {
            let mut cur: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, ptr::null(), &mut cur) == 0 && cur.sa_sigaction == on_signal as *const () as usize {
                libc::sigaction(sig, (*PREV.0.get())[i].as_ptr(), ptr::null_mut());
            }
        }
    }
}

/// Install the signal handlers (chaining whatever was there; a signal that was ignored stays ignored) and the
/// atexit hook, once per process. Called the first time a governor changes a setting.
pub(crate) fn install_handlers() {
    INSTALL.call_once(|| {
        for (i, &sig) in SIGNALS.iter().enumerate() {
            // SAFETY: plain sigaction calls with valid pointers; PREV[i] is written before the handler that reads
            // it is installed, and PREV_SET[i] (Release) publishes it.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, ptr::null(), &mut old) != 0 || old.sa_sigaction == libc::SIG_IGN {
                    continue;
                }
                (*PREV.0.get())[i] = MaybeUninit::new(old);
                PREV_SET[i].store(true, Ordering::Release);
                let mut new: libc::sigaction = std::mem::zeroed();
                new.sa_sigaction = on_signal as *const () as usize;
                new.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
                libc::sigemptyset(&mut new.sa_mask);
                libc::sigaction(sig, &new, ptr::null_mut());
            }
        }
        // SAFETY: registers a plain extern "C" function; glibc ties it to this DSO, so it also runs on dlclose.
        unsafe { libc::atexit(on_exit) };
    });
}

// ---------------------------------------------------------------------------------------------------------------
// State files

const MAGIC: &str = "asymo-ep governor state v1";
/// The only attributes a state file may name: recovery runs as root, so it must never write anything else.
const ALLOWED: [&str; 4] = ["scaling_min_freq", "scaling_max_freq", "scaling_governor", "scaling_setspeed"];

/// Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat), to tell a reused pid apart.
pub(crate) fn process_start_time(pid: i32) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: fields 3.. follow the last ')'.
    let rest = &s[s.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Is the process that wrote a state file gone?
fn pid_is_dead(pid: i32, start: Option<u64>) -> bool {
    if pid <= 0 {
        return true;
    }
    // SAFETY: signal 0 only checks existence and permission.
    let r = unsafe { libc::kill(pid, 0) };
    if r != 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
        return true;
    }
    match (start, process_start_time(pid)) {
        (Some(recorded), Some(now)) => recorded != now,
        _ => false,
    }
}

/// Write a state file atomically (temporary file + rename), mode 0600.
pub(crate) fn write_state_file(path: &Path, entries: &[(PathBuf, String)]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    if !dir_is_private(dir) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the directory is not owned by this user or is writable by others",
        ));
    }
    let pid = std::process::id() as i32;
    let mut text = format!("{MAGIC}\npid {pid}\n");
    if let Some(st) = process_start_time(pid) {
        text.push_str(&format!("start {st}\n"));
    }
    for (p, v) in entries {
        text.push_str(&format!("set {}\t{}\n", p.display(), v));
    }
    let tmp = path.with_extension("tmp");
    {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)
}

struct StateFile {
    pid: i32,
    start: Option<u64>,
    entries: Vec<(PathBuf, String)>,
}

fn parse_state_file(text: &str) -> Option<StateFile> {
    let mut lines = text.lines();
    if lines.next()? != MAGIC {
        return None;
    }
    let mut st = StateFile { pid: 0, start: None, entries: Vec::new() };
    for l in lines {
        if let Some(v) = l.strip_prefix("pid ") {
            st.pid = v.trim().parse().ok()?;
        } else if let Some(v) = l.strip_prefix("start ") {
            st.start = v.trim().parse().ok();
        } else if let Some(v) = l.strip_prefix("set ") {
            let (p, val) = v.split_once('\t')?;
            st.entries.push((PathBuf::from(p), val.to_string()));
        }
    }
    Some(st)
}

fn entry_is_safe(root: &Path, path: &Path, value: &str) -> bool {
    let cpufreq = root.join("devices/system/cpu");
    let name_ok = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| ALLOWED.contains(&n));
    let value_ok = !value.is_empty()
        && value.len() <= 32
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    name_ok && value_ok && path.starts_with(&cpufreq) && !path.components().any(|c| c.as_os_str() == "..")
}

/// Can we trust files in `dir`? Owned by us and not writable by group or others.
fn dir_is_private(dir: &Path) -> bool {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    fs::metadata(dir).is_ok_and(|m| m.is_dir() && m.uid() == euid && m.permissions().mode() & 0o022 == 0)
}

/// What recovery found: what it undid, and originals recorded by live processes (another process of ours using the
/// same device: its "original" values are the real originals, not what we read now).
#[derive(Default)]
pub(crate) struct Recovery {
    pub(crate) undone: Vec<(PathBuf, String)>,
    pub(crate) live_originals: Vec<(PathBuf, String)>,
    pub(crate) messages: Vec<String>,
}

/// Undo what dead processes left in `dir` (only attributes under `root`'s cpufreq tree), remove their files.
pub(crate) fn recover(dir: &Path, root: &Path) -> Recovery {
    let mut rec = Recovery::default();
    let Ok(rd) = fs::read_dir(dir) else { return rec };
    if !dir_is_private(dir) {
        rec.messages.push(format!(
            "ignoring governor state files in {}: the directory is not owned by this user or is writable by others",
            dir.display()
        ));
        return rec;
    }
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    for e in rd.flatten() {
        let path = e.path();
        if path.extension().and_then(|x| x.to_str()) != Some("state") {
            continue;
        }
        if !fs::metadata(&path).is_ok_and(|m| m.is_file() && m.uid() == euid) {
            continue;
        }
        let Some(st) = fs::read_to_string(&path).ok().and_then(|t| parse_state_file(&t)) else {
            continue;
        };
        let ours: Vec<_> = st.entries.iter().filter(|(p, v)| entry_is_safe(root, p, v)).cloned().collect();
        if !pid_is_dead(st.pid, st.start) {
            rec.live_originals.extend(ours);
            continue;
        }
        let mut failed = false;
        for (p, v) in &ours {
            match fs::OpenOptions::new().write(true).truncate(true).open(p).and_then(|mut f| f.write_all(v.as_bytes()))
            {
                Ok(()) => rec.undone.push((p.clone(), v.clone())),
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => {
                    failed = true;
                    rec.messages.push(format!("could not restore {} to {v}: {err}", p.display()));
                }
            }
        }
        if !failed && ours.len() == st.entries.len() {
            let _ = fs::remove_file(&path);
        }
        if !ours.is_empty() {
            rec.messages.push(format!(
                "undid {} frequency setting(s) left by dead process {} (state file {})",
                ours.len(),
                st.pid,
                path.display()
            ));
        }
    }
    rec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_file_round_trip_and_safety() {
        let root = Path::new("/sys");
        let text = format!(
            "{MAGIC}\npid 42\nstart 7\nset /sys/devices/system/cpu/cpufreq/policy0/scaling_min_freq\t1018000\n\
             set /etc/passwd\troot\nset /sys/devices/system/cpu/cpufreq/policy0/scaling_governor\tsched util\n"
        );
        let st = parse_state_file(&text).unwrap();
        assert_eq!((st.pid, st.start, st.entries.len()), (42, Some(7), 3));
        let safe: Vec<bool> = st.entries.iter().map(|(p, v)| entry_is_safe(root, p, v)).collect();
        assert_eq!(safe, [true, false, false]);
        assert!(!entry_is_safe(root, Path::new("/sys/devices/system/cpu/../../../etc/scaling_min_freq"), "1"));
        assert!(parse_state_file("something else\npid 1\n").is_none());
    }

    /// A dead pid's file is undone only in a private directory and only for allowed attributes under the root.
    #[test]
    fn recovery_trusts_only_private_dirs() {
        let base = std::env::temp_dir().join(format!("asymo-gov-recover-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let pol = base.join("devices/system/cpu/cpufreq/policy0");
        fs::create_dir_all(&pol).unwrap();
        let min = pol.join("scaling_min_freq");
        let other = base.join("not-sysfs");
        let dir = base.join("state");
        fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
        // A pid that is certainly dead: a child we already reaped.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id() as i32;
        child.wait().unwrap();
        let write_leftover = || {
            fs::write(&min, "2000000").unwrap();
            fs::write(&other, "keep").unwrap();
            let text =
                format!("{MAGIC}\npid {dead}\nset {}\t500000\nset {}\tclobbered\n", min.display(), other.display());
            fs::write(dir.join("x.state"), text).unwrap();
        };

        write_leftover();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        let rec = recover(&dir, &base);
        assert!(rec.undone.is_empty());
        assert!(rec.messages[0].contains("writable by others"), "{:?}", rec.messages);
        assert_eq!(fs::read_to_string(&min).unwrap(), "2000000");

        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        let rec = recover(&dir, &base);
        assert_eq!(rec.undone, [(min.clone(), "500000".to_string())]);
        assert_eq!(fs::read_to_string(&min).unwrap(), "500000");
        assert_eq!(fs::read_to_string(&other).unwrap(), "keep", "outside the cpufreq tree: never written");
        assert!(dir.join("x.state").exists(), "kept: it names a path this root does not cover");
        let _ = fs::remove_dir_all(&base);
    }

    #[test]
    fn own_process_is_alive_and_start_time_is_read() {
        let pid = std::process::id() as i32;
        let st = process_start_time(pid);
        assert!(st.is_some());
        assert!(!pid_is_dead(pid, st));
        assert!(pid_is_dead(pid, st.map(|s| s + 1)), "a different start time means the pid was reused");
    }
}
