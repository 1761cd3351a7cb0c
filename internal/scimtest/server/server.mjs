// An independent SCIM 2.0 service provider for idsync's integration tests.
// The protocol (routing, schema validation, filter parsing, PatchOp, list
// responses, sorting, pagination, error bodies) is done by the npm packages
// scimmy and scimmy-routers; this file only adds an in-memory store, bearer
// auth, userName uniqueness and the application of the parsed filter.
//
// Env: SCIMTEST_TOKEN (required bearer token), SCIMTEST_PORT (default 0),
// SCIMTEST_EXIT_ON_STDIN_EOF=1 (exit when stdin closes: the parent died).
// Prints "listening 127.0.0.1:PORT" as its first line on stdout.
import {randomUUID} from "node:crypto";
import express from "express";
import SCIMMY from "scimmy";
import SCIMMYRouters from "scimmy-routers";

const token = process.env.SCIMTEST_TOKEN ?? "";
if (!token) {
    console.error("SCIMTEST_TOKEN must be set");
    process.exit(2);
}
const port = Number(process.env.SCIMTEST_PORT ?? 0);

const SCIMError = SCIMMY.Types.Error;
// Store of resource type name -> Map(id -> plain JSON record).
const store = {User: new Map(), Group: new Map()};

// plain turns a scimmy schema instance into plain JSON (drops id/meta, which
// are the store's to set).
function plain(instance) {
    const {id, meta, schemas, ...data} = JSON.parse(JSON.stringify(instance));
    return data;
}

// scimmy 1.3.5's filter tokeniser ends a string at the first '"' even after a
// backslash, and never unescapes. So string literals holding an escape are
// swapped, before scimmy sees the filter, for a hex placeholder that egress
// turns back into the JSON-decoded value.
const literal = /"(?:[^"\\]|\\.)*"/g;
const hexed = /^__scimtest_hex_([0-9a-f]*)__$/;
function hideEscapes(filter) {
    return filter.replace(literal, (lit) => {
        if (!lit.includes("\\")) return lit;
        try {
            return `"__scimtest_hex_${Buffer.from(JSON.parse(lit)).toString("hex")}__"`;
        } catch {
            return lit; // not a valid JSON string: let scimmy reject it
        }
    });
}
function unhideAll(v) {
    if (typeof v === "string") {
        const m = hexed.exec(v);
        return m ? Buffer.from(m[1], "hex").toString() : v;
    }
    if (v && typeof v === "object") for (const k of Object.keys(v)) v[k] = unhideAll(v[k]);
    return v;
}
// unhide returns filter with its placeholders decoded (Filter is frozen).
function unhide(filter) {
    if (!filter.expression.includes("__scimtest_hex_")) return filter;
    return new SCIMMY.Types.Filter(unhideAll(JSON.parse(JSON.stringify([...filter]))));
}

function assertUnique(type, id, data) {
    // RFC 7643: userName is unique and not case-exact; scimmy does not check
    // uniqueness by itself (it has no store), so it is done here.
    if (type !== "User" || typeof data.userName !== "string") return;
    const want = data.userName.toLowerCase();
    for (const [other, rec] of store.User) {
        if (other !== id && rec.userName?.toLowerCase() === want)
            throw new SCIMError(409, "uniqueness", `userName "${data.userName}" is already taken`);
    }
}

function handlers(type) {
    const records = store[type];
    return {
        // ingress: POST (resource.id undefined), PUT, and the write half of PATCH.
        ingress: (resource, instance) => {
            const data = plain(instance);
            const now = new Date().toISOString();
            let created = now;
            if (resource.id) {
                const old = records.get(resource.id);
                if (!old) throw new SCIMError(404, null, `Resource ${resource.id} not found`);
                created = old.meta.created;
            }
            const id = resource.id ?? randomUUID();
            assertUnique(type, id, data);
            const rec = {...data, id, meta: {resourceType: type, created, lastModified: now}};
            records.set(id, rec);
            return structuredClone(rec);
        },
        // egress: GET one (resource.id) or a list; scimmy sorts and paginates
        // the list itself (ListResponse with startIndex/count), so egress
        // returns every match. The filter arrives parsed; match applies it.
        egress: (resource) => {
            if (resource.id) {
                const rec = records.get(resource.id);
                if (!rec) throw new SCIMError(404, null, `Resource ${resource.id} not found`);
                return structuredClone(rec);
            }
            const all = [...records.values()].map((r) => structuredClone(r));
            if (!resource.filter) return all;
            // Match one record at a time: scimmy's match throws on a record
            // that lacks the parent of a sub-attribute path (name.givenName).
            const filter = unhide(resource.filter);
            return all.filter((r) => {
                try {
                    return filter.match([r]).length > 0;
                } catch {
                    return false;
                }
            });
        },
        degress: (resource) => {
            if (!records.delete(resource.id))
                throw new SCIMError(404, null, `Resource ${resource.id} not found`);
            if (type === "User") {
                for (const g of store.Group.values())
                    g.members = g.members?.filter((m) => m.value !== resource.id);
            }
        },
    };
}

SCIMMY.Resources.declare(SCIMMY.Resources.User.extend(SCIMMY.Schemas.EnterpriseUser, false), handlers("User"));
SCIMMY.Resources.declare(SCIMMY.Resources.Group, handlers("Group"));
SCIMMY.Config.set({patch: true, filter: true, sort: true, etag: false, changePassword: false, bulk: false});

const app = express();
app.disable("x-powered-by");
app.use("/scim/v2", (req, res, next) => {
    if (typeof req.query.filter === "string") req.query.filter = hideEscapes(req.query.filter);
    next();
});
app.use("/scim/v2", new SCIMMYRouters({
    type: "bearer",
    handler: (req) => {
        if (req.header("Authorization") !== `Bearer ${token}`) throw new Error("Missing or invalid bearer token");
    },
    context: () => undefined,
    baseUri: (req) => `http://${req.header("Host")}`,
}));

const server = app.listen(port, "127.0.0.1", () => {
    const {address, port} = server.address();
    process.stdout.write(`listening ${address}:${port}\n`);
});
server.on("error", (err) => {
    console.error(err);
    process.exit(1);
});
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => process.exit(0));
if (process.env.SCIMTEST_EXIT_ON_STDIN_EOF === "1") {
    process.stdin.on("end", () => process.exit(0));
    process.stdin.on("error", () => process.exit(0));
    process.stdin.resume();
}
