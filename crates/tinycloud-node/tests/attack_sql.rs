//! Attacks on the SQL service, end to end against the real binary: the ways a delegate (or a
//! signed-in user) could exceed its grant or exhaust the node, each asserted refused.

mod common;

use common::*;
use serde_json::{json, Value};
use tinycloud_auth::capability::{Capability, Caveats};
use tinycloud_auth::keys::SecretKey;
use tinycloud_auth::resource::Resource;
use tinycloud_auth::session::capability;

fn caps(resource: &str, abilities: &[&str]) -> Vec<Capability> {
    abilities
        .iter()
        .map(|a| capability(resource, &format!("tinycloud.sql/{a}")).unwrap())
        .collect()
}

fn with_caveat(mut cs: Vec<Capability>, caveat: Value) -> Vec<Capability> {
    for c in &mut cs {
        c.caveats = Caveats::from_objects(vec![caveat.as_object().unwrap().clone()]);
    }
    cs
}

fn q(sql: &str) -> Value {
    json!({"action": "query", "sql": sql})
}

fn x(sql: &str) -> Value {
    json!({"action": "execute", "sql": sql})
}

/// Finding 1: a grant on one database reaches exactly that database, whatever the path.
#[tokio::test]
async fn a_database_grant_reaches_no_other_database() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 90, "default").await;
    let oc = o.client(&node);
    for (db, table) in [
        ("app1", "mine"),
        ("app1/secrets", "secret"),
        ("default", "d"),
    ] {
        let r = o.res(&format!("sql/{db}"));
        oc.execute(&r, "admin", &format!("CREATE TABLE {table} (v TEXT)"))
            .await
            .expect(200);
        oc.execute(&r, "write", &format!("INSERT INTO {table} VALUES ('{db}')"))
            .await
            .expect(200);
    }
    let app1 = o.res("sql/app1");
    let agent = ed25519(91);
    let grant = delegate(
        &node,
        &o.session,
        &agent.did(),
        &[o.session_cid],
        caps(&app1, &["read", "write"]),
        600,
    )
    .await;
    let ac = Client::new(&node, &agent, &[grant]);
    // Its own database works.
    let r = ac
        .query(&app1, "read", "SELECT v FROM mine")
        .await
        .expect(200);
    assert_eq!(r.json()["rows"], json!([["app1"]]));
    // Every other database is out of reach, for reads, writes and exports.
    for other in [
        "sql/app1/secrets",
        "sql/app1/",
        "sql/default",
        "sql",
        "sql/APP1",
    ] {
        let res = o.res(other);
        for (ability, body) in [
            ("read", q("SELECT * FROM secret")),
            ("read", q("SELECT * FROM d")),
            ("write", x("DELETE FROM secret")),
            ("write", x("DELETE FROM d")),
            ("read", json!({"action": "export"})),
        ] {
            let r = ac.sql(&res, ability, body.clone()).await;
            assert_eq!(r.status, 401, "{other} {ability} {body}: {}", r.text());
        }
    }
    // Nothing was touched.
    for (db, table) in [("app1/secrets", "secret"), ("default", "d")] {
        let r = oc
            .query(
                &o.res(&format!("sql/{db}")),
                "read",
                &format!("SELECT v FROM {table}"),
            )
            .await
            .expect(200);
        assert_eq!(r.json()["rows"], json!([[db]]));
    }
    // The whole path names the database: `app1/secrets` is not `secrets`.
    oc.query(&o.res("sql/secrets"), "read", "SELECT 1")
        .await
        .expect(404);

    // A namespace grant (trailing `/`) covers the databases under it, and nothing else.
    let ns = o.res("sql/app1/");
    let ns_agent = ed25519(92);
    let g = delegate(
        &node,
        &o.session,
        &ns_agent.did(),
        &[o.session_cid],
        caps(&ns, &["read"]),
        600,
    )
    .await;
    let nc = Client::new(&node, &ns_agent, &[g]);
    let r = nc
        .query(&o.res("sql/app1/secrets"), "read", "SELECT v FROM secret")
        .await
        .expect(200);
    assert_eq!(r.json()["rows"], json!([["app1/secrets"]]));
    for other in ["sql/app1", "sql/app1x/a", "sql/default"] {
        nc.query(&o.res(other), "read", "SELECT 1")
            .await
            .expect(401);
    }
}

/// Each row: who (grant), the resource path under `<space>/`, the ability, the request, and
/// the expected status.
struct Attack {
    grant: &'static str,
    path: &'static str,
    ability: &'static str,
    body: Value,
    want: u16,
}

fn a(
    grant: &'static str,
    path: &'static str,
    ability: &'static str,
    body: Value,
    want: u16,
) -> Attack {
    Attack {
        grant,
        path,
        ability,
        body,
        want,
    }
}

/// The ways a delegate could exceed its grant, each refused.
#[tokio::test]
async fn delegates_cannot_exceed_their_grants() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 93, "default").await;
    let oc = o.client(&node);
    let app1 = o.res("sql/app1");
    oc.sql(
        &app1,
        "admin",
        json!({"action": "batch", "statements": [
            {"sql": "CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT)"},
            {"sql": "CREATE TABLE s (secret TEXT)"},
            {"sql": "INSERT INTO t (v) VALUES ('visible')"},
            {"sql": "INSERT INTO s VALUES ('hidden')"},
            {"sql": "CREATE VIEW sv AS SELECT secret FROM s"},
            {"sql": "CREATE INDEX s_secret ON s (secret)"}
        ]}),
    )
    .await
    .expect(200);
    oc.execute(&o.res("sql/app1/x"), "admin", "CREATE TABLE t (v)")
        .await
        .expect(200);

    // The grants: name → capabilities on app1.
    let grants: Vec<(&str, Vec<Capability>)> = vec![
        ("rw", caps(&app1, &["read", "write"])),
        ("read", caps(&app1, &["read"])),
        ("write", caps(&app1, &["read", "write"])),
        ("schema", caps(&app1, &["read", "schema"])),
        (
            "tables",
            with_caveat(
                caps(&app1, &["read", "write"]),
                json!({"tables": ["t", "sv"]}),
            ),
        ),
        (
            "tables-admin",
            with_caveat(caps(&app1, &["admin"]), json!({"tables": ["t2"]})),
        ),
        (
            "readonly",
            with_caveat(caps(&app1, &["read", "write"]), json!({"readOnly": true})),
        ),
        ("admin", caps(&app1, &["admin"])),
    ];
    let mut clients = std::collections::HashMap::new();
    let keys: Vec<(String, SecretKey, Vec<Capability>)> = grants
        .into_iter()
        .enumerate()
        .map(|(i, (n, c))| (n.to_owned(), ed25519(100 + i as u8), c))
        .collect();
    for (name, key, cs) in &keys {
        let cid = delegate(
            &node,
            &o.session,
            &key.did(),
            &[o.session_cid],
            cs.clone(),
            600,
        )
        .await;
        clients.insert(name.clone(), Client::new(&node, key, &[cid]));
    }

    // Controls: each grant does what it allows with the same request shapes the attacks use,
    // so a refusal below is the rule under test, not a broken grant (none changes `t`).
    let controls = vec![
        a("rw", "sql/app1", "read", q("SELECT v FROM t"), 200),
        a("read", "sql/app1", "read", q("SELECT v FROM t"), 200),
        a("write", "sql/app1", "write", x("UPDATE t SET v = v"), 200),
        a(
            "schema",
            "sql/app1",
            "schema",
            x("CREATE TABLE ctl (a)"),
            200,
        ),
        a("schema", "sql/app1", "schema", x("DROP TABLE ctl"), 200),
        a("readonly", "sql/app1", "read", q("SELECT v FROM t"), 200),
        a("admin", "sql/app1", "admin", q("SELECT v FROM t"), 200),
    ];
    for at in &controls {
        let r = clients[at.grant]
            .sql(&o.res(at.path), at.ability, at.body.clone())
            .await;
        assert_eq!(
            r.status,
            at.want,
            "control {} {}: {}",
            at.grant,
            at.body,
            r.text()
        );
    }
    let attacks = vec![
        // Another database by path tricks.
        a("rw", "sql/app1/x", "read", q("SELECT * FROM t"), 401),
        a("rw", "sql/app1/", "read", q("SELECT * FROM t"), 401),
        a("rw", "sql/APP1", "read", q("SELECT * FROM t"), 401),
        a("rw", "sql/app1%2Fx", "read", q("SELECT * FROM t"), 401),
        a("rw", "sql/app1//x", "read", q("SELECT * FROM t"), 401),
        a("rw", "sql/app1x", "read", q("SELECT * FROM t"), 401),
        a("rw", "sql", "read", q("SELECT * FROM t"), 401),
        a("rw", "sql/app1/x", "read", json!({"action": "export"}), 401),
        a("rw", "kv/app1", "read", q("SELECT 1"), 401),
        // Read-only grant writing.
        a("read", "sql/app1", "write", x("DELETE FROM t"), 401),
        a("read", "sql/app1", "read", x("DELETE FROM t"), 403),
        a("read", "sql/app1", "read", x("INSERT INTO t (v) VALUES ('x')"), 403),
        a("read", "sql/app1", "read", q("INSERT INTO t (v) VALUES ('x') RETURNING id"), 403),
        a("read", "sql/app1", "read", q("UPDATE t SET v = 'x' RETURNING v"), 403),
        a("read", "sql/app1", "read", q("WITH c AS (SELECT 1) DELETE FROM t"), 403),
        a("read", "sql/app1", "read", x("CREATE TABLE u (a)"), 403),
        a("read", "sql/app1", "read", x("PRAGMA user_version = 9"), 403),
        a("read", "sql/app1", "read", x("REPLACE INTO t (id, v) VALUES (1, 'x')"), 403),
        a("read", "sql/app1", "read", json!({"action": "batch", "statements": [{"sql": "SELECT 1"}, {"sql": "DELETE FROM t"}]}), 403),
        // Write permits DDL (as the reference: its clients migrate under `write`), but not
        // triggers or pragmas; schema without admin.
        a("write", "sql/app1", "write", x("CREATE TABLE wddl (a)"), 200),
        a("write", "sql/app1", "write", x("DROP TABLE wddl"), 200),
        a("write", "sql/app1", "write", x("CREATE TRIGGER tw AFTER INSERT ON t BEGIN DELETE FROM s; END"), 403),
        a("write", "sql/app1", "write", x("PRAGMA user_version = 3"), 403),
        a("write", "sql/app1", "schema", x("CREATE TABLE u (a)"), 401),
        a("schema", "sql/app1", "schema", x("INSERT INTO t (v) VALUES ('x')"), 403),
        a("schema", "sql/app1", "schema", x("CREATE TRIGGER tr AFTER INSERT ON t BEGIN DELETE FROM s; END"), 403),
        a("schema", "sql/app1", "schema", x("PRAGMA user_version = 3"), 403),
        a("schema", "sql/app1", "admin", x("PRAGMA user_version = 3"), 401),
        // A table caveat escaping through the schema table, pragmas, views and internals.
        a("tables", "sql/app1", "read", q("SELECT v FROM t"), 200),
        a("tables", "sql/app1", "read", q("SELECT * FROM s"), 403),
        a("tables", "sql/app1", "read", q("SELECT sql FROM sqlite_master"), 403),
        a("tables", "sql/app1", "read", q("SELECT name FROM sqlite_schema"), 403),
        a("tables", "sql/app1", "read", q("SELECT * FROM sqlite_temp_master"), 403),
        a("tables", "sql/app1", "read", q("SELECT * FROM sqlite_sequence"), 403),
        a("tables", "sql/app1", "read", q("SELECT * FROM (SELECT sql FROM sqlite_master)"), 403),
        a("tables", "sql/app1", "read", q("SELECT name FROM pragma_table_list"), 403),
        a("tables", "sql/app1", "read", q("SELECT name FROM pragma_table_info('s')"), 403),
        a("tables", "sql/app1", "read", x("PRAGMA table_list"), 403),
        a("tables", "sql/app1", "read", x("PRAGMA index_info(s_secret)"), 403),
        a("tables", "sql/app1", "read", x("PRAGMA table_info(s)"), 403),
        a("tables", "sql/app1", "read", q("PRAGMA table_info(t)"), 200),
        a("tables", "sql/app1", "read", q("SELECT * FROM sv"), 403),
        a("tables", "sql/app1", "read", q("SELECT name FROM dbstat"), 403),
        a("tables", "sql/app1", "write", x("INSERT INTO t (v) SELECT sql FROM sqlite_master"), 403),
        a("tables", "sql/app1", "write", x("INSERT INTO t (v) SELECT secret FROM s"), 403),
        a("tables-admin", "sql/app1", "admin", x("CREATE TABLE t2 AS SELECT sql AS leaked FROM sqlite_master"), 403),
        a("tables-admin", "sql/app1", "admin", x("CREATE TABLE t2 AS SELECT secret FROM s"), 403),
        // …while its own DDL still works (SQLite's bookkeeping reads the schema table).
        a("tables-admin", "sql/app1", "admin", x("CREATE TABLE t2 (a)"), 200),
        a("tables-admin", "sql/app1", "admin", x("ALTER TABLE t2 ADD COLUMN b"), 200),
        a("tables-admin", "sql/app1", "admin", x("CREATE TRIGGER tr AFTER INSERT ON t2 BEGIN INSERT INTO t2 (a) SELECT sql FROM sqlite_master; END"), 200),
        // Firing it reads the schema table on the client's behalf: refused.
        a("tables-admin", "sql/app1", "admin", x("INSERT INTO t2 (a) VALUES (1)"), 403),
        a("tables-admin", "sql/app1", "admin", x("DROP TABLE t2"), 200),
        a("tables-admin", "sql/app1", "admin", x("DROP TABLE s"), 403),
        // readOnly caveat.
        a("readonly", "sql/app1", "write", x("INSERT INTO t (v) VALUES ('x')"), 403),
        a("readonly", "sql/app1", "write", q("DELETE FROM t RETURNING id"), 403),
        // What no level may do: paths, other files, extensions.
        a("admin", "sql/app1", "admin", q("PRAGMA database_list"), 403),
        a("admin", "sql/app1", "admin", q("SELECT file FROM pragma_database_list"), 403),
        a("admin", "sql/app1", "admin", q("SELECT * FROM pragma_compile_options"), 403),
        a("admin", "sql/app1", "admin", x("ATTACH DATABASE 'x.db' AS x"), 403),
        a("admin", "sql/app1", "admin", q("SELECT load_extension('x')"), 403),
        a("admin", "sql/app1", "admin", x("VACUUM INTO '/tmp/tc-attack.db'"), 403),
        a("admin", "sql/app1", "admin", x("PRAGMA writable_schema = ON"), 403),
        a("admin", "sql/app1", "admin", x("CREATE VIRTUAL TABLE f USING fts5(x)"), 403),
        a("admin", "sql/app1/x", "admin", x("DROP TABLE t"), 401),
    ];
    for at in &attacks {
        let c = &clients[at.grant];
        let r = c.sql(&o.res(at.path), at.ability, at.body.clone()).await;
        assert_eq!(
            r.status,
            at.want,
            "{} on {} as {}: {}: {}",
            at.grant,
            at.path,
            at.ability,
            at.body,
            r.text()
        );
    }
    // Malformed database names are refused, never rewritten (even for the owner).
    for bad in [
        "sql/app1/",
        "sql/",
        "sql/.hidden",
        "sql/a%2Fb",
        "sql/a//b",
        "sql/a b",
    ] {
        let r = oc.query(&o.res(bad), "read", "SELECT 1").await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
    // `..` segments are refused by the protocol core's resource parser, which is the one the
    // node decodes invocations with (no client can even sign such a capability through it).
    assert!(matches!(
        o.res("sql/app1/../app1").parse::<Resource>(),
        Err(tinycloud_auth::resource::ResourceError::InvalidPath(_))
    ));
    // The owner's data is intact.
    let r = oc.query(&app1, "read", "SELECT v FROM t").await.expect(200);
    assert_eq!(r.json()["rows"], json!([["visible"]]));
    let r = oc
        .query(&app1, "read", "SELECT secret FROM s")
        .await
        .expect(200);
    assert_eq!(r.json()["rows"], json!([["hidden"]]));
    assert!(!std::path::Path::new("/tmp/tc-attack.db").exists());
}

fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Finding 5: a 25-byte query must not make the node allocate gigabytes before the response
/// cap is checked.
#[tokio::test]
async fn tiny_queries_cannot_allocate_gigabytes() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 94, "default").await;
    let c = o.client(&node);
    let db = o.res("sql/dos");
    c.execute(&db, "admin", "CREATE TABLE t (a)")
        .await
        .expect(200);
    let pid = node.child.id();
    let before = vm_hwm_kib(pid);
    let t0 = std::time::Instant::now();
    for stmt in [
        "SELECT zeroblob(16000000)",
        "SELECT zeroblob(16000000), zeroblob(16000000), zeroblob(16000000)",
        "SELECT randomblob(16000000)",
        "SELECT replace(zeroblob(8000000), x'00', 'ab')",
        "SELECT printf('%.*c', 16000000, 'x')",
    ] {
        let r = c.query(&db, "read", stmt).await;
        assert!(
            r.status == 413,
            "{stmt}: {} {}",
            r.status,
            r.text().chars().take(200).collect::<String>()
        );
    }
    // A result just under the cap still comes back.
    let r = c
        .query(&db, "read", "SELECT zeroblob(1000000)")
        .await
        .expect(200);
    assert_eq!(r.json()["rows"][0][0].as_array().unwrap().len(), 1_000_000);
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        t0.elapsed()
    );
    let grown_mib = (vm_hwm_kib(pid).saturating_sub(before)) / 1024;
    assert!(grown_mib < 200, "peak RSS grew by {grown_mib} MiB");
}

/// Finding 6: databases are bounded per space and open databases are bounded per node (idle
/// ones closed, their descriptors released), without losing an acknowledged write.
async fn databases_are_bounded(env: &[(&str, &str)]) {
    let mut env = env.to_vec();
    env.extend([
        ("TINYCLOUD_SQL__MAX_DATABASES_PER_SPACE", "40"),
        ("TINYCLOUD_SQL__MAX_OPEN_DATABASES", "8"),
    ]);
    let node = Node::start(NODE_BIN, &env);
    let pid = node.child.id();
    let a = Owner::sign_in(&node, 95, "default").await;
    let b = Owner::sign_in(&node, 96, "default").await;
    let baseline = open_fds(pid);
    for (o, tag) in [(&a, "a"), (&b, "b")] {
        let c = o.client(&node);
        for i in 0..40 {
            let db = o.res(&format!("sql/db{i}"));
            c.execute(&db, "admin", "CREATE TABLE t (v TEXT)")
                .await
                .expect(200);
            c.execute(&db, "write", &format!("INSERT INTO t VALUES ('{tag}{i}')"))
                .await
                .expect(200);
            c.query(&db, "read", "SELECT v FROM t").await.expect(200);
        }
        // One more is refused with a clear message, before anything is created.
        let r = c
            .execute(&o.res("sql/one-too-many"), "admin", "CREATE TABLE t (v)")
            .await
            .expect(402);
        assert!(r.text().contains("40"), "{}", r.text());
        c.query(&o.res("sql/one-too-many"), "read", "SELECT 1")
            .await
            .expect(404);
    }
    // 80 databases were used; at most 8 stay open (7 descriptors each at most).
    let fds = open_fds(pid);
    assert!(
        fds <= baseline + 8 * 7 + 16,
        "{fds} descriptors open (baseline {baseline})"
    );
    // Every acknowledged write is still there after its database was closed, and the owners
    // keep writing.
    for (o, tag) in [(&a, "a"), (&b, "b")] {
        let c = o.client(&node);
        for i in 0..40 {
            let db = o.res(&format!("sql/db{i}"));
            let r = c.query(&db, "read", "SELECT v FROM t").await.expect(200);
            assert_eq!(r.json()["rows"], json!([[format!("{tag}{i}")]]));
        }
        c.execute(&o.res("sql/db0"), "write", "INSERT INTO t VALUES ('later')")
            .await
            .expect(200);
    }
    assert!(open_fds(pid) <= baseline + 8 * 7 + 16);
}

#[tokio::test]
async fn databases_are_bounded_local() {
    databases_are_bounded(&[]).await;
}

#[tokio::test]
async fn databases_are_bounded_shipped() {
    databases_are_bounded(&[("TINYCLOUD_SQL__HOSTING", "shipped")]).await;
}

/// Several capabilities in one SQL invocation (as the reference JS SDK sends `write` +
/// `schema`): every one must be held, all must name the same database, and one capability's
/// caveats are never lifted by another that carries the same ones.
#[tokio::test]
async fn multi_capability_invocations_grant_no_more_than_each_capability() {
    let node = Node::start(NODE_BIN, &[]);
    let o = Owner::sign_in(&node, 94, "default").await;
    let oc = o.client(&node);
    let (app1s, app2s) = (o.res("sql/app1"), o.res("sql/app2"));
    let (app1, app2) = (app1s.as_str(), app2s.as_str());
    oc.sql(
        app1,
        "admin",
        json!({"action": "batch", "statements": [
            {"sql": "CREATE TABLE t (v TEXT)"},
            {"sql": "CREATE TABLE s (secret TEXT)"},
            {"sql": "INSERT INTO s VALUES ('hidden')"}
        ]}),
    )
    .await
    .expect(200);
    oc.execute(app2, "admin", "CREATE TABLE z (v TEXT)")
        .await
        .expect(200);
    let count = |table: &'static str| {
        let oc = &oc;
        async move {
            oc.query(app1, "read", &format!("SELECT count(*) FROM {table}"))
                .await
                .expect(200)
                .json()["rows"][0][0]
                .clone()
        }
    };

    // The agent holds read + write on app1 limited to table `t`, and read on app2.
    let agent = ed25519(120);
    let mut held = with_caveat(caps(app1, &["read", "write"]), json!({"tables": ["t"]}));
    held.extend(caps(app2, &["read"]));
    let cid = delegate(&node, &o.session, &agent.did(), &[o.session_cid], held, 600).await;
    let ac = Client::new(&node, &agent, &[cid]);
    let body = |v: Value| v.to_string().into_bytes();
    let ct = [("content-type", "application/json")];
    let w = "tinycloud.sql/write";

    // Control: both held capabilities together work, under the table caveat.
    ac.invoke_caps(
        &[(app1, w), (app1, "tinycloud.sql/read")],
        &ct,
        body(x("INSERT INTO t VALUES ('ok')")),
    )
    .await
    .expect(200);

    // One capability not held (schema, admin) refuses the whole invocation: nothing runs,
    // not even the statements the held capability would allow.
    for extra in [
        "tinycloud.sql/schema",
        "tinycloud.sql/admin",
        "tinycloud.sql/*",
    ] {
        let r = ac
            .invoke_caps(
                &[(app1, w), (app1, extra)],
                &ct,
                body(
                    json!({"action": "execute", "sql": "INSERT INTO t VALUES ('x')",
                            "schema": ["CREATE TABLE IF NOT EXISTS planted (a)"]}),
                ),
            )
            .await;
        assert_eq!(r.status, 401, "{extra}: {}", r.text());
        // The unheld capability cannot lift the table caveat either.
        let r = ac
            .invoke_caps(
                &[(app1, w), (app1, extra)],
                &ct,
                body(x("INSERT INTO s VALUES ('x')")),
            )
            .await;
        assert_eq!(r.status, 401, "{extra}: {}", r.text());
    }
    assert_eq!(count("t").await, json!(1));
    assert_eq!(count("s").await, json!(1));
    let r = oc
        .query(
            app1,
            "read",
            "SELECT count(*) FROM sqlite_master WHERE name = 'planted'",
        )
        .await
        .expect(200);
    assert_eq!(r.json()["rows"][0][0], json!(0));

    // Held capabilities with the same caveat do not combine into an unconstrained one.
    for sql in [
        "INSERT INTO s VALUES ('x')",
        "INSERT INTO t SELECT secret FROM s",
        "CREATE TABLE planted (a)",
    ] {
        let r = ac
            .invoke_caps(
                &[(app1, w), (app1, "tinycloud.sql/read")],
                &ct,
                body(x(sql)),
            )
            .await;
        assert_eq!(r.status, 403, "{sql}: {}", r.text());
    }
    assert_eq!(count("t").await, json!(1));

    // Two databases (both held) in one invocation: refused, whatever the order.
    for pair in [
        [(app1, w), (app2, "tinycloud.sql/read")],
        [(app2, "tinycloud.sql/read"), (app1, w)],
    ] {
        let r = ac
            .invoke_caps(&pair, &ct, body(q("SELECT count(*) FROM z")))
            .await;
        assert_eq!(r.status, 400, "{}", r.text());
        assert!(r.text().contains("same database"), "{}", r.text());
    }
    // A second database not held: the chain check refuses first.
    let r = ac
        .invoke_caps(
            &[(app1, w), (app2, w)],
            &ct,
            body(x("INSERT INTO z VALUES ('x')")),
        )
        .await;
    assert_eq!(r.status, 401, "{}", r.text());
    // SQL mixed with another service: refused.
    let kv = o.res("kv/x");
    let r = ac
        .invoke_caps(
            &[(app1, w), (&kv, "tinycloud.kv/get")],
            &ct,
            body(q("SELECT 1")),
        )
        .await;
    assert!(matches!(r.status, 401 | 501), "{} {}", r.status, r.text());
}
