// web/openapi.json against the OpenAPI 3.0 schema, with @apidevtools/swagger-parser (pinned in
// package-lock.json; it validates offline: the schema ships in the package). Which routes the
// document must describe is checked by tests/api/test_openapi.py against web/server.c.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import SwaggerParser from "@apidevtools/swagger-parser";
import { ROOT } from "./lib/envhub.mjs";

const DOC = path.join(ROOT, "web", "openapi.json");

test("web/openapi.json is a valid OpenAPI 3.0 document", async () => {
  const doc = JSON.parse(fs.readFileSync(DOC, "utf8"));
  assert.equal(doc.openapi, "3.0.3");
  // validate() checks the schema and the references; it throws with every problem found
  const api = await SwaggerParser.validate(structuredClone(doc));
  assert.ok(Object.keys(api.paths).length >= 20);
});

test("every operation has an id, a summary and an error answer in {detail}", () => {
  const doc = JSON.parse(fs.readFileSync(DOC, "utf8"));
  const ids = new Set();
  for (const [p, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (method === "parameters") continue;
      const where = `${method.toUpperCase()} ${p}`;
      assert.ok(op.operationId && !ids.has(op.operationId), `${where}: operationId missing or repeated`);
      ids.add(op.operationId);
      assert.ok(op.summary, `${where}: no summary`);
      assert.ok(Array.isArray(op.security), `${where}: no security`);
      const codes = Object.keys(op.responses);
      if (op.security.length) assert.ok(codes.includes("401") && codes.includes("403"), `${where}: 401/403`);
    }
  }
  assert.deepEqual(doc.components.schemas.Error.required, ["detail"]);
});
