//! Lua health checks with Argo CD's contract: the object is the global
//! `obj`, the script returns `{status = "Healthy"|..., message = "..."}`.
//!
//! Scripts are repository content, so untrusted. They run in a sandbox:
//! Lua 5.2 — Argo CD's gopher-lua speaks 5.1 but also accepts `goto`, which
//! Argo CD's own scripts use, so 5.2 plus the 5.1 functions gopher-lua keeps
//! (`unpack`, `table.getn`) runs them — with only the base functions
//! that compute, `string`, `table`, `math` and `os.time`; no `io`, `os`
//! commands, `require`, `load*`, `dofile`, `pcall` (so a script cannot catch
//! its own limit errors) or `debug`; text chunks only (no bytecode); a
//! memory limit, an instruction limit and a time limit. Every failure is an
//! [`HealthStatus::Unknown`] naming the script's file and line.
//!
//! One Lua state per thread is kept and reused (compiled scripts are
//! cached in it); every run gets a fresh global table, so scripts do not
//! see each other's globals.

use crate::status::{Health, HealthStatus};
use jiff::Timestamp;
use mlua::chunk::ChunkMode;
use mlua::{
    Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value as LuaValue, VmState,
};
use serde_json::Value;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Most memory a script's Lua state may use.
pub const MEMORY_LIMIT: usize = 32 * 1024 * 1024;
/// Most Lua VM instructions one run may execute.
pub const INSTRUCTION_LIMIT: u64 = 10_000_000;
/// Longest one run may take.
pub const TIME_LIMIT: Duration = Duration::from_secs(1);

/// How often (in instructions) the limits are checked.
const HOOK_EVERY: u32 = 1000;

/// Globals copied into every script's environment.
const SAFE_GLOBALS: &[&str] = &[
    "assert",
    "error",
    "ipairs",
    "next",
    "pairs",
    "rawequal",
    "rawget",
    "select",
    "setmetatable",
    "getmetatable",
    "tonumber",
    "tostring",
    "type",
    "unpack",
    "_VERSION",
];

/// Libraries scripts see through read-only proxies, so no script can
/// change them for the scripts that run after it on the same thread.
const LIBRARIES: &[&str] = &["string", "table", "math"];

/// Globals that exist only to refuse with a clear message.
const REFUSED_GLOBALS: &[&str] = &[
    "require",
    "dofile",
    "loadfile",
    "load",
    "loadstring",
    "module",
    "collectgarbage",
    "getfenv",
    "setfenv",
    "newproxy",
    "print",
    "rawset",
    "pcall",
    "xpcall",
    "coroutine",
];

/// Library tables whose every member is refused.
const REFUSED_LIBRARIES: &[&str] = &["io", "debug", "package"];

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static VM: RefCell<Option<Vm>> = const { RefCell::new(None) };
}

/// A Lua health script, syntax-checked.
#[derive(Debug, Clone)]
pub struct LuaScript {
    id: u64,
    /// Where the script was read from (repository path), for messages.
    pub file: String,
    text: String,
}

/// A script that does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct LuaSyntaxError {
    /// The script's file.
    pub file: String,
    /// The line of the error, when Lua names one.
    pub line: Option<u64>,
    /// Lua's message, starting with `file:line:`.
    pub message: String,
}

/// One thread's Lua state with its sandbox and compiled scripts.
struct Vm {
    lua: Lua,
    /// The safe globals, the `__index` of every run's environment.
    env_meta: Table,
    compiled: HashMap<u64, Function>,
    /// Instructions executed by the current run.
    executed: Rc<Cell<u64>>,
    /// When the current run started.
    started: Rc<Cell<Instant>>,
    /// What the current run may see as "now" (`os.time()`).
    now: Rc<Cell<Option<i64>>>,
}

// === impl LuaScript ===

impl LuaScript {
    /// Checks `text`'s syntax; `file` names it in messages.
    pub fn compile(file: &str, text: &str) -> Result<LuaScript, LuaSyntaxError> {
        let lua = Lua::new_with(StdLib::NONE, LuaOptions::new()).map_err(|e| LuaSyntaxError {
            file: file.to_string(),
            line: None,
            message: format!("{file}: cannot start Lua: {e}"),
        })?;
        load(&lua, file, text).map_err(|e| {
            let message = error_message(&e);
            LuaSyntaxError {
                file: file.to_string(),
                line: line_of(&message, file),
                message,
            }
        })?;
        Ok(LuaScript {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            file: file.to_string(),
            text: text.to_string(),
        })
    }

    /// Runs the script over `obj`; never fails: errors are Unknown.
    pub fn assess(&self, obj: &Value, now: Option<Timestamp>) -> Health {
        VM.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.is_none() {
                match Vm::new() {
                    Ok(vm) => *slot = Some(vm),
                    Err(e) => {
                        return Health::unknown(format!("{}: cannot start Lua: {e}", self.file));
                    }
                }
            }
            let Some(vm) = slot.as_mut() else {
                return Health::unknown(format!("{}: cannot start Lua", self.file));
            };
            match vm.run(self, obj, now) {
                Ok(health) => health,
                Err(e) => {
                    // A state that hit a limit may hold garbage: start afresh.
                    *slot = None;
                    Health::unknown(error_message(&e))
                }
            }
        })
    }
}

/// Loads `text` as a text chunk named after `file`, so messages read `file:line:`.
fn load(lua: &Lua, file: &str, text: &str) -> mlua::Result<Function> {
    lua.load(text)
        .set_name(format!("@{file}"))
        .set_mode(ChunkMode::Text)
        .into_function()
}

/// The message of an error, without mlua's wrapping and tracebacks.
fn error_message(e: &mlua::Error) -> String {
    match e {
        mlua::Error::CallbackError { cause, .. } => error_message(cause),
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::RuntimeError(m) => m.clone(),
        mlua::Error::MemoryError(_) => format!(
            "the script used more than the memory limit of {} MiB",
            MEMORY_LIMIT / (1024 * 1024)
        ),
        mlua::Error::ExternalError(e) => e.to_string(),
        other => other.to_string(),
    }
}

/// The line in a `file:line: message` error.
fn line_of(message: &str, file: &str) -> Option<u64> {
    let rest = message.split_once(&format!("{file}:"))?.1;
    rest.split(':').next()?.parse().ok()
}

// === impl Vm ===

impl Vm {
    fn new() -> mlua::Result<Vm> {
        let lua = Lua::new_with(
            StdLib::TABLE | StdLib::STRING | StdLib::MATH,
            LuaOptions::new(),
        )?;
        let executed = Rc::new(Cell::new(0u64));
        let started = Rc::new(Cell::new(Instant::now()));
        let now: Rc<Cell<Option<i64>>> = Rc::new(Cell::new(None));
        let safe = lua.create_table()?;
        let globals = lua.globals();
        // Lua 5.1 functions that gopher-lua keeps and scripts written for
        // Argo CD call (trusted setup code, run before the sandbox exists).
        lua.load(
            "table.getn = table.getn or function(t) return #t end\nunpack = unpack or table.unpack",
        )
        .set_name("=compat")
        .exec()?;
        for name in SAFE_GLOBALS {
            safe.raw_set(*name, globals.raw_get::<LuaValue>(*name)?)?;
        }
        for name in LIBRARIES {
            let library: Table = globals.raw_get(*name)?;
            safe.raw_set(*name, read_only(&lua, name, library)?)?;
        }
        for name in REFUSED_GLOBALS {
            safe.raw_set(*name, refusing_function(&lua, name)?)?;
        }
        for name in REFUSED_LIBRARIES {
            safe.raw_set(*name, refusing_table(&lua, name, lua.create_table()?)?)?;
        }
        let os = os_table(&lua, now.clone())?;
        safe.raw_set("os", read_only(&lua, "os", os)?)?;
        let env_meta = lua.create_table()?;
        env_meta.raw_set("__index", safe)?;
        // In Lua 5.2 a script reaches its environment as `_ENV`: hide and
        // lock the metatable, or `getmetatable(_ENV).__index` would hand it
        // the table every later script reads its globals from.
        env_meta.raw_set("__metatable", false)?;
        {
            let executed = executed.clone();
            let started = started.clone();
            lua.set_hook(
                HookTriggers::new().every_nth_instruction(HOOK_EVERY),
                move |_lua, debug| {
                    let count = executed.get() + u64::from(HOOK_EVERY);
                    executed.set(count);
                    let why = if count > INSTRUCTION_LIMIT {
                        format!(
                            "the script ran more than {INSTRUCTION_LIMIT} instructions (an endless loop?)"
                        )
                    } else if started.get().elapsed() > TIME_LIMIT {
                        format!("the script ran longer than {TIME_LIMIT:?}")
                    } else {
                        return Ok(VmState::Continue);
                    };
                    let source = debug.source();
                    let file = source.short_src.as_deref().unwrap_or("?");
                    Err(mlua::Error::RuntimeError(format!(
                        "{file}:{}: {why}",
                        debug.current_line().unwrap_or(0)
                    )))
                },
            )?;
        }
        lua.set_memory_limit(MEMORY_LIMIT)?;
        Ok(Vm {
            lua,
            env_meta,
            compiled: HashMap::new(),
            executed,
            started,
            now,
        })
    }

    fn run(
        &mut self,
        script: &LuaScript,
        obj: &Value,
        now: Option<Timestamp>,
    ) -> mlua::Result<Health> {
        if !self.compiled.contains_key(&script.id) {
            if self.compiled.len() >= 1024 {
                self.compiled.clear();
            }
            let f = load(&self.lua, &script.file, &script.text)?;
            self.compiled.insert(script.id, f);
        }
        let Some(function) = self.compiled.get(&script.id) else {
            return Err(mlua::Error::RuntimeError("script not compiled".into()));
        };
        let env = self.lua.create_table()?;
        env.raw_set("obj", to_lua(&self.lua, obj, 0)?)?;
        env.set_metatable(Some(self.env_meta.clone()))?;
        function.set_environment(env)?;
        self.executed.set(0);
        self.started.set(Instant::now());
        self.now.set(now.map(|t| t.as_second()));
        let returned: MultiValue = function.call(())?;
        Ok(verdict(&script.file, returned.into_iter().next()))
    }
}

/// The health a script returned: a table with a valid `status`.
fn verdict(file: &str, returned: Option<LuaValue>) -> Health {
    let Some(LuaValue::Table(table)) = returned else {
        return Health::unknown(format!(
            "{file}: the script must return a table with `status` and `message`"
        ));
    };
    let message = match table.raw_get::<LuaValue>("message") {
        Ok(LuaValue::String(s)) => s.to_string_lossy(),
        Ok(LuaValue::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let status = match table.raw_get::<LuaValue>("status") {
        Ok(LuaValue::String(s)) => s.to_string_lossy(),
        _ => String::new(),
    };
    match serde_json::from_value::<HealthStatus>(Value::String(status.clone())) {
        Ok(status) => Health::new(status, message),
        Err(_) => Health::unknown(format!(
            "{file}: the script returned status {status:?}; expected Healthy, Progressing, Degraded, Suspended, Missing or Unknown"
        )),
    }
}

/// A function that raises "`name` is not available".
fn refusing_function(lua: &Lua, name: &str) -> mlua::Result<Function> {
    let message =
        format!("{name} is not available in health checks: they may only compute from `obj`");
    lua.create_function(move |lua, _: MultiValue| -> mlua::Result<()> {
        Err(mlua::Error::RuntimeError(format!(
            "{}{message}",
            caller(lua)
        )))
    })
}

/// `file:line: ` of the Lua code that called the current Rust function.
fn caller(lua: &Lua) -> String {
    lua.inspect_stack(1, |debug| {
        let source = debug.source();
        let file = source.short_src.as_deref().unwrap_or("?").to_string();
        format!("{file}:{}: ", debug.current_line().unwrap_or(0))
    })
    .unwrap_or_default()
}

/// `table` with a metatable that refuses every other member of `library`.
fn refusing_table(lua: &Lua, library: &str, table: Table) -> mlua::Result<Table> {
    let meta = lua.create_table()?;
    let library = library.to_string();
    meta.raw_set(
        "__index",
        refusal(lua, move |key| {
            format!(
                "{library}.{key} is not available in health checks: they may only compute from `obj` (no files, processes or network)"
            )
        })?,
    )?;
    table.set_metatable(Some(meta))?;
    Ok(table)
}

/// A metamethod (`__index`, `__newindex`) that raises `message(key)` at the
/// caller's file and line.
fn refusal(lua: &Lua, message: impl Fn(&str) -> String + 'static) -> mlua::Result<Function> {
    lua.create_function(
        move |lua, (_, key, _): (LuaValue, LuaValue, LuaValue)| -> mlua::Result<()> {
            let key = match key {
                LuaValue::String(s) => s.to_string_lossy(),
                _ => "?".into(),
            };
            Err(mlua::Error::RuntimeError(format!(
                "{}{}",
                caller(lua),
                message(&key)
            )))
        },
    )
}

/// A proxy of `library` whose members read through and cannot be set.
fn read_only(lua: &Lua, name: &str, library: Table) -> mlua::Result<Table> {
    let proxy = lua.create_table()?;
    let meta = lua.create_table()?;
    meta.raw_set("__index", library)?;
    let name = name.to_string();
    meta.raw_set(
        "__newindex",
        refusal(lua, move |key| {
            format!("{name}.{key} cannot be changed in health checks")
        })?,
    )?;
    meta.raw_set("__metatable", false)?;
    proxy.set_metatable(Some(meta))?;
    Ok(proxy)
}

/// `os` with only `time`: `os.time()` is the assessment's time (never the
/// clock), `os.time{year=…, month=…, day=…, hour=…, min=…, sec=…}` converts
/// a UTC date.
fn os_table(lua: &Lua, now: Rc<Cell<Option<i64>>>) -> mlua::Result<Table> {
    let os = lua.create_table()?;
    let time = lua.create_function(move |_, date: Option<Table>| -> mlua::Result<f64> {
        let Some(date) = date else {
            return now.get().map(|s| s as f64).ok_or_else(|| {
                mlua::Error::RuntimeError("os.time() has no current time in this assessment".into())
            });
        };
        let part = |name: &str, default: i64| -> mlua::Result<i64> {
            Ok(date
                .raw_get::<Option<f64>>(name)?
                .map_or(default, |v| v as i64))
        };
        let civil = jiff::civil::DateTime::new(
            i16::try_from(part("year", 1970)?).unwrap_or(1970),
            i8::try_from(part("month", 1)?).unwrap_or(1),
            i8::try_from(part("day", 1)?).unwrap_or(1),
            i8::try_from(part("hour", 12)?).unwrap_or(12),
            i8::try_from(part("min", 0)?).unwrap_or(0),
            i8::try_from(part("sec", 0)?).unwrap_or(0),
            0,
        )
        .map_err(|e| mlua::Error::RuntimeError(format!("os.time: {e}")))?;
        let ts = civil
            .to_zoned(jiff::tz::TimeZone::UTC)
            .map_err(|e| mlua::Error::RuntimeError(format!("os.time: {e}")))?;
        Ok(ts.timestamp().as_second() as f64)
    })?;
    os.raw_set("time", time)?;
    refusing_table(lua, "os", os)
}

/// Most nesting converted; deeper values are left out (the API server
/// itself refuses objects nested this deep).
const MAX_DEPTH: usize = 64;

/// `obj` as Lua values, as Argo CD passes it: JSON null is nil, arrays
/// are 1-based tables, numbers are Lua numbers. `metadata.managedFields`
/// is left out: no check reads it and it is the bulk of most objects.
fn to_lua(lua: &Lua, value: &Value, depth: usize) -> mlua::Result<LuaValue> {
    Ok(match value {
        Value::Null => LuaValue::Nil,
        Value::Bool(b) => LuaValue::Boolean(*b),
        Value::Number(n) => LuaValue::Number(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => LuaValue::String(lua.create_string(s)?),
        _ if depth >= MAX_DEPTH => LuaValue::Nil,
        Value::Array(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i + 1, to_lua(lua, item, depth + 1)?)?;
            }
            LuaValue::Table(t)
        }
        Value::Object(map) => {
            let t = lua.create_table_with_capacity(0, map.len())?;
            for (k, v) in map {
                if depth == 1 && k == "managedFields" {
                    continue;
                }
                if !v.is_null() {
                    t.raw_set(k.as_str(), to_lua(lua, v, depth + 1)?)?;
                }
            }
            LuaValue::Table(t)
        }
    })
}
