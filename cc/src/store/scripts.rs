//! The Lua scripts of the store, each prefixed with the shared helpers of `lib.lua`.

use redis::Script;

/// The certificate record's helpers (record.lua) come first: lib.lua's use them.
const LIB: &str = concat!(include_str!("record.lua"), "\n", include_str!("lib.lua"));

pub(super) struct Scripts {
    pub submit: Script,
    pub lease: Script,
    pub extend: Script,
    pub complete: Script,
    pub fail: Script,
    pub reap: Script,
    pub register: Script,
    pub deregister: Script,
    pub heartbeat: Script,
    pub list: Script,
    pub drain: Script,
    pub idem_begin: Script,
    pub cb_claim: Script,
    pub cb_result: Script,
    pub cb_replay: Script,
    pub cb_expire: Script,
    pub catalogs: Script,
    pub queues: Script,
    pub migrate: Script,
}

fn with_lib(body: &str) -> Script {
    Script::new(&format!("{LIB}\n{body}"))
}

impl Scripts {
    pub fn new() -> Self {
        Self {
            submit: with_lib(include_str!("submit.lua")),
            lease: with_lib(include_str!("lease.lua")),
            extend: with_lib(include_str!("extend.lua")),
            complete: with_lib(include_str!("complete.lua")),
            fail: with_lib(include_str!("fail.lua")),
            reap: with_lib(include_str!("reap.lua")),
            register: with_lib(include_str!("register.lua")),
            deregister: with_lib(include_str!("deregister.lua")),
            heartbeat: with_lib(include_str!("heartbeat.lua")),
            list: with_lib(include_str!("list.lua")),
            drain: Script::new(include_str!("drain.lua")),
            idem_begin: Script::new(include_str!("idem_begin.lua")),
            cb_claim: with_lib(include_str!("cb_claim.lua")),
            cb_result: Script::new(include_str!("cb_result.lua")),
            cb_replay: Script::new(include_str!("cb_replay.lua")),
            cb_expire: with_lib(include_str!("cb_expire.lua")),
            catalogs: with_lib(include_str!("catalogs.lua")),
            queues: with_lib(include_str!("queues.lua")),
            migrate: with_lib(include_str!("migrate.lua")),
        }
    }
}
