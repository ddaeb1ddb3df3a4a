#!/usr/bin/env node
// npm `mongodb-atlas-api-client@4.19.0` against dbcert, with only the base URL changed (its
// `baseUrl` option). Usage: node client_mongodb_atlas_api_client.js BASE_URL PUBLIC_KEY PRIVATE_KEY
//
// Drives every call the client offers for organizations (`organization`), projects
// (`project`), database users (`user`) and events (`event`); it has none for certificates or
// API keys, which go through its own transport (`src/httpClient.js`, urllib with Digest).
// Calls for teams, console users and invitations (resources dbcert does not model) are not
// driven. Each step is one line on stdout, as tests/python/atlas_client_run.py describes.
//
// The client returns the body of every answer, errors included, and never fails on a status.
//
// Client bugs, each checked as "the client fails, and dbcert answers what Atlas answers":
// - `user.get`, `user.update` and `user.delete` hard-code the `admin` database, where Atlas
//   keeps `$external` (X.509) users: Atlas answers 404 USERNAME_NOT_FOUND there.
// - The transport parses every answer as JSON (`dataType: "json"`), and `POST …/certs`
//   answers PEM text.

"use strict";

const getClient = require("mongodb-atlas-api-client");
const HttpClient = require("mongodb-atlas-api-client/src/httpClient");
const urllib = require("urllib");

const PREFIX = "ATLAS-CLIENT-CALL ";
const OBJECT_ID = /^[0-9a-f]{24}$/;
const PROJECT = "from-mongodb-atlas-api-client";
const USER = "node.user";
// A project's first certificate also makes its RSA-4096 CA key: on a loaded 2-core machine that
// can pass urllib's default timeout of 5 s, so the certificate calls set their own.
const ISSUE_TIMEOUT = 120000;

class CheckFailed extends Error {}

function check(condition, detail) {
  if (!condition) {
    throw new CheckFailed(typeof detail === "string" ? detail : JSON.stringify(detail).slice(0, 600));
  }
}

function checkError(body, status, errorCode) {
  check(body && body.error === status && body.errorCode === errorCode, body);
}

async function step(name, fn) {
  try {
    const result = await fn();
    console.log(PREFIX + JSON.stringify({call: name, ok: true, detail: ""}));
    return result;
  } catch (error) {
    const detail = `${error.name}: ${error.message}`.slice(0, 1500);
    console.log(PREFIX + JSON.stringify({call: name, ok: false, detail}));
    return undefined;
  }
}

async function main() {
  const [base, publicKey, privateKey] = process.argv.slice(2);
  const baseUrl = `${base.replace(/\/$/, "")}/api/atlas/v1.0`;
  const transport = new HttpClient(urllib, publicKey, privateKey);
  // What the script sets up when a client call failed, or reads what the client misreads.
  const plain = async (method, path, data, dataType = "json") => (
    await urllib.request(`${baseUrl}${path}`, {
      method, data, dataType, digestAuth: `${publicKey}:${privateKey}`,
      headers: data ? {"Content-Type": "application/json"} : {}
    })
  );
  let atlas = getClient({publicKey, privateKey, baseUrl});

  // === Organizations
  const orgId = await step("organization.getAll", async () => {
    const found = await atlas.organization.getAll();
    check(found.totalCount === 1 && OBJECT_ID.test(found.results[0].id), found);
    check(found.results[0].name === "Default Organization", found);
    return found.results[0].id;
  }) || (await plain("GET", "/orgs")).data.results[0].id;

  await step("organization.getById", async () => {
    const found = await atlas.organization.getById(orgId);
    check(found.id === orgId && found.name === "Default Organization", found);
  });

  await step("organization.rename", async () => {
    const renamed = await atlas.organization.rename(orgId, {name: "Renamed Organization"});
    check(renamed.id === orgId && renamed.name === "Renamed Organization", renamed);
    check((await atlas.organization.getById(orgId)).name === "Renamed Organization", "not renamed");
    const back = await atlas.organization.rename(orgId, {name: "Default Organization"});
    check(back.name === "Default Organization", back);
  });

  // === Projects
  const groupId = await step("project.create", async () => {
    const created = await atlas.project.create({name: PROJECT, orgId});
    check(OBJECT_ID.test(created.id) && created.name === PROJECT && created.orgId === orgId, created);
    return created.id;
  }) || (await plain("POST", "/groups", {name: PROJECT})).data.id;
  atlas = getClient({publicKey, privateKey, baseUrl, projectId: groupId});

  await step("project.getAll (itemsPerPage, pageNum)", async () => {
    const found = await atlas.project.getAll({itemsPerPage: 1, pageNum: 1});
    check(found.totalCount === 1 && found.results[0].id === groupId, found);
  });

  await step("project.getById", async () => {
    const found = await atlas.project.getById(groupId);
    check(found.id === groupId && found.clusterCount === 0, found);
  });

  await step("project.getByName", async () => {
    const found = await atlas.project.getByName(PROJECT);
    check(found.id === groupId && found.name === PROJECT, found);
  });

  await step("organization.getAllProjectsForOrganization", async () => {
    const found = await atlas.organization.getAllProjectsForOrganization(orgId);
    check(found.totalCount === 1 && found.results[0].id === groupId, found);
  });

  // === Database users
  await step("user.create", async () => {
    const created = await atlas.user.create({
      databaseName: "$external",
      groupId,
      roles: [{databaseName: "admin", roleName: "readAnyDatabase"}],
      username: USER,
      x509Type: "MANAGED"
    });
    check(created.username === USER && created.x509Type === "MANAGED", created);
  });

  await step("user.getAll", async () => {
    const found = await atlas.user.getAll({pageNum: 1});
    check(found.totalCount === 1 && found.results[0].username === USER, found);
  });

  await step("user.get [client bug: admin database]", async () => {
    checkError(await atlas.user.get(USER), 404, "USERNAME_NOT_FOUND");
    const found = await transport.fetch(`${baseUrl}/groups/${groupId}/databaseUsers/$external/${USER}`);
    check(found.username === USER && found.databaseName === "$external", found);
  });

  await step("user.update [client bug: admin database]", async () => {
    const roles = [{databaseName: "admin", roleName: "readWriteAnyDatabase"}];
    checkError(await atlas.user.update(USER, {roles}), 404, "USERNAME_NOT_FOUND");
    const found = await transport.fetch(`${baseUrl}/groups/${groupId}/databaseUsers/$external/${USER}`, {
      method: "PATCH", data: {roles}, headers: {"Content-Type": "application/json"}
    });
    check(JSON.stringify(found.roles) === JSON.stringify(roles), found);
  });

  await step("user.create with description (an Atlas attribute)", async () => {
    const created = await atlas.user.create({
      databaseName: "$external",
      description: "made by the npm client",
      roles: [{databaseName: "admin", roleName: "readAnyDatabase"}],
      username: "node.described",
      x509Type: "MANAGED"
    });
    check(created.description === "made by the npm client", created);
  });

  // === Certificates: its own transport
  const certs = `${baseUrl}/groups/${groupId}/databaseUsers/${USER}/certs`;
  await step("transport POST …/certs [client bug: parses the PEM answer as JSON]", async () => {
    let parsed = false;
    try {
      await transport.fetch(certs, {
        method: "POST", data: {monthsUntilExpiration: 6}, headers: {"Content-Type": "application/json"},
        timeout: ISSUE_TIMEOUT
      });
      parsed = true;
    } catch (error) {
      check(error.name === "JSONResponseFormatError", `${error.name}: ${error.message}`);
    }
    check(!parsed, "the transport parsed the PEM answer");
    const answer = await urllib.request(certs, {
      method: "POST", data: {monthsUntilExpiration: 6}, dataType: "text", timeout: ISSUE_TIMEOUT,
      digestAuth: `${publicKey}:${privateKey}`, headers: {"Content-Type": "application/json"}
    });
    check(answer.status === 201, answer.data);
    check(answer.data.startsWith("-----BEGIN CERTIFICATE-----\n"), answer.data.slice(0, 80));
    check(answer.data.endsWith("-----END " + "PRIVATE KEY-----\n"), answer.data.slice(-80));
  });

  await step("transport GET …/certs", async () => {
    const found = await transport.fetch(certs);
    check(found.totalCount === 2 && found.results.every(c => c.subject === `CN=${USER}`), found);
  });

  // === Events
  const eventId = await step("event.getAll", async () => {
    const found = await atlas.event.getAll({eventType: "MONGODB_USER_X509_CERT_CREATED"});
    check(found.totalCount === 2, found);
    check(found.results.every(e => e.eventTypeName === "MONGODB_USER_X509_CERT_CREATED"), found);
    return found.results[0].id;
  });

  await step("event.get", async () => {
    check(eventId, "no event id (the step before failed)");
    const found = await atlas.event.get(eventId);
    check(found.id === eventId && found.groupId === groupId, found);
    check(found.eventTypeName === "MONGODB_USER_X509_CERT_CREATED", found);
  });

  const orgEventId = await step("event.getAllByOrganizationId", async () => {
    const found = await atlas.event.getAllByOrganizationId(orgId, {itemsPerPage: 100});
    check(found.totalCount >= 1 && found.results.every(e => e.orgId === orgId), found);
    return found.results[0].id;
  });

  await step("event.getByOrganizationId", async () => {
    check(orgEventId, "no event id (the step before failed)");
    const found = await atlas.event.getByOrganizationId(orgId, orgEventId);
    check(found.id === orgEventId && found.orgId === orgId, found);
  });

  // === API keys: its own transport
  await step("transport POST, GET, PATCH, DELETE /orgs/{orgId}/apiKeys[/{id}]", async () => {
    const keys = `${baseUrl}/orgs/${orgId}/apiKeys`;
    const json = {"Content-Type": "application/json"};
    const created = await transport.fetch(keys, {
      method: "POST", data: {desc: "from node", roles: ["ORG_READ_ONLY"]}, headers: json
    });
    check(OBJECT_ID.test(created.id) && created.desc === "from node", created);
    const one = await transport.fetch(`${keys}/${created.id}`);
    check(one.publicKey === created.publicKey, one);
    const changed = await transport.fetch(`${keys}/${created.id}`, {
      method: "PATCH", data: {desc: "renamed"}, headers: json
    });
    check(changed.desc === "renamed", changed);
    await transport.fetch(`${keys}/${created.id}`, {method: "DELETE"});
    checkError(await transport.fetch(`${keys}/${created.id}`), 404, "INVALID_API_KEY_ID");
  });

  // === Deleting
  await step("user.delete [client bug: admin database]", async () => {
    check(await atlas.user.delete(USER) === true, "delete did not return true");
    const admin = await plain("DELETE", `/groups/${groupId}/databaseUsers/admin/${USER}`);
    checkError(admin.data, 404, "USERNAME_NOT_FOUND");
    const found = await atlas.user.getAll();
    check(found.results.some(u => u.username === USER), "the user went away through admin");
    await transport.fetch(`${baseUrl}/groups/${groupId}/databaseUsers/$external/${USER}`, {method: "DELETE"});
    const after = await atlas.user.getAll();
    check(!after.results.some(u => u.username === USER), after);
  });

  await step("project.delete", async () => {
    check(await atlas.project.delete(groupId) === true, "delete did not return true");
    checkError(await atlas.project.getById(groupId), 404, "GROUP_NOT_FOUND");
  });

  await step("organization.delete (an organization made with POST /orgs)", async () => {
    const made = await plain("POST", "/orgs", {name: "from-node"});
    check(made.status === 201 && made.data.organization, made.data);
    const id = made.data.organization.id;
    check(await atlas.organization.delete(id) === true, "delete did not return true");
    checkError(await atlas.organization.getById(id), 404, "ORG_NOT_FOUND");
  });

  console.log("ATLAS-CLIENT-DONE");
}

main().catch(error => {
  console.error(error);
  process.exit(1);
});
