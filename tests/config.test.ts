/**
 * The worker's environment as a table: defaults, parsed values, and for each
 * bad value the ConfigError that names its variable.
 */
import { describe, expect, test } from "bun:test";
import { hostname } from "node:os";
import { ConfigError, WorkerEnv, loadConfig } from "../shared/config.ts";

const KEY = { ARBEIDER_VERIFY_KEY_FILE: "/etc/arbeider/verify.pem" };

describe("WorkerEnv", () => {
  test("defaults follow the contract", () => {
    expect(loadConfig(WorkerEnv, KEY)).toEqual({
      AMQP_URL: ["amqp://guest:guest@127.0.0.1:5672"],
      ARBEIDER_FLEET: "default",
      LOG_LEVEL: "info",
      ARBEIDER_QUEUE_TYPE: "classic",
      ARBEIDER_CONFIRM_TIMEOUT: 10,
      ARBEIDER_VERIFY_KEY_FILE: ["/etc/arbeider/verify.pem"],
      ARBEIDER_NODE_ID: hostname(),
      ARBEIDER_GROUPS: [],
      ARBEIDER_REPO_DIR: ".",
      ARBEIDER_TIMEOUT: 600,
      ARBEIDER_SERVICES: {},
      ARBEIDER_ROLLBACK_ON_FAILURE: false,
      ARBEIDER_HEARTBEAT_SECONDS: 15,
      ARBEIDER_HEALTH_TIMEOUT: 60,
      ARBEIDER_HEALTH_INTERVAL: 2,
    });
  });

  test("lists, numbers, booleans and services are parsed", () => {
    const config = loadConfig(WorkerEnv, {
      AMQP_URL: "amqp://a:b@rmq-1, amqps://a:b@rmq-2:5671",
      ARBEIDER_VERIFY_KEY_FILE: "/k/old.pem, /k/new.pem",
      ARBEIDER_GROUPS: "web, eu",
      ARBEIDER_TIMEOUT: "30",
      ARBEIDER_ROLLBACK_ON_FAILURE: "true",
      ARBEIDER_SERVICES: "web=/run/web.pid,queue=/run/q.pid",
      ARBEIDER_HEARTBEAT_SECONDS: "5",
      ARBEIDER_HEALTH_URL: "https://127.0.0.1:8443/healthz",
      ARBEIDER_HEALTH_CMD: "bin/check",
      ARBEIDER_HEALTH_TIMEOUT: "20",
      ARBEIDER_HEALTH_INTERVAL: "1",
    });
    expect(config).toMatchObject({
      ARBEIDER_HEALTH_URL: "https://127.0.0.1:8443/healthz",
      ARBEIDER_HEALTH_CMD: "bin/check",
      ARBEIDER_HEALTH_TIMEOUT: 20,
      ARBEIDER_HEALTH_INTERVAL: 1,
      AMQP_URL: ["amqp://a:b@rmq-1", "amqps://a:b@rmq-2:5671"],
      ARBEIDER_VERIFY_KEY_FILE: ["/k/old.pem", "/k/new.pem"],
      ARBEIDER_GROUPS: ["web", "eu"],
      ARBEIDER_TIMEOUT: 30,
      ARBEIDER_ROLLBACK_ON_FAILURE: true,
      ARBEIDER_SERVICES: { web: "/run/web.pid", queue: "/run/q.pid" },
      ARBEIDER_HEARTBEAT_SECONDS: 5,
    });
  });

  test("an empty value counts as unset", () => {
    expect(loadConfig(WorkerEnv, { ...KEY, ARBEIDER_TIMEOUT: "", ARBEIDER_FLEET: "" })).toMatchObject({ ARBEIDER_TIMEOUT: 600, ARBEIDER_FLEET: "default" });
  });

  const problems: [string, Record<string, string>, string][] = [
    ["nothing", {}, "ARBEIDER_VERIFY_KEY_FILE: is required"],
    ["an empty key list", { ARBEIDER_VERIFY_KEY_FILE: " , " }, "ARBEIDER_VERIFY_KEY_FILE: names no file"],
    ["a node id starting with a dash", { ARBEIDER_NODE_ID: "-rf" }, "ARBEIDER_NODE_ID: must match"],
    ["a node id with a dot", { ARBEIDER_NODE_ID: "web.1" }, "ARBEIDER_NODE_ID: must match"],
    ["a group with a space", { ARBEIDER_GROUPS: "web,front end" }, "ARBEIDER_GROUPS: each group must match"],
    ["a fleet with a dot", { ARBEIDER_FLEET: "shop.eu" }, "ARBEIDER_FLEET: must match"],
    ["a timeout that is not a number", { ARBEIDER_TIMEOUT: "10m" }, "ARBEIDER_TIMEOUT: must be a whole number"],
    ["a timeout of zero", { ARBEIDER_TIMEOUT: "0" }, "ARBEIDER_TIMEOUT: must be at least 1"],
    ["a heartbeat of a day", { ARBEIDER_HEARTBEAT_SECONDS: "86400" }, "ARBEIDER_HEARTBEAT_SECONDS: must be at most 3600"],
    ["a boolean that is not one", { ARBEIDER_ROLLBACK_ON_FAILURE: "sometimes" }, "ARBEIDER_ROLLBACK_ON_FAILURE: must be true or false"],
    ["a service without a pidfile", { ARBEIDER_SERVICES: "web" }, "ARBEIDER_SERVICES: must be name=/absolute/pidfile"],
    ["a relative pidfile", { ARBEIDER_SERVICES: "web=run/web.pid" }, "ARBEIDER_SERVICES: must be name=/absolute/pidfile"],
    ["an http broker URL", { AMQP_URL: "http://rmq" }, "AMQP_URL: must be amqp:// or amqps:// URLs"],
    ["an unknown log level", { LOG_LEVEL: "verbose" }, "LOG_LEVEL: must be debug, info, warn or error"],
    ["an unknown queue type", { ARBEIDER_QUEUE_TYPE: "stream" }, "ARBEIDER_QUEUE_TYPE: must be classic or quorum"],
    ["a health URL of another scheme", { ARBEIDER_HEALTH_URL: "file:///etc/passwd" }, "ARBEIDER_HEALTH_URL: must be an http:// or https:// URL"],
    ["a health URL that is no URL", { ARBEIDER_HEALTH_URL: "localhost:8080/health" }, "ARBEIDER_HEALTH_URL: must be an http:// or https:// URL"],
    ["a health interval of zero", { ARBEIDER_HEALTH_INTERVAL: "0" }, "ARBEIDER_HEALTH_INTERVAL: must be at least 1"],
  ];
  for (const [name, env, message] of problems) {
    test(`${name} is a ConfigError naming the variable`, () => {
      const source = name === "nothing" ? env : { ...KEY, ...env };
      let error: unknown;
      try {
        loadConfig(WorkerEnv, source);
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).message).toStartWith(message);
      expect((error as ConfigError).variable).toBe(message.split(":")[0]);
    });
  }
});
