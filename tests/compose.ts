/**
 * Reads what the image test needs from examples/docker-compose.yml, so the
 * containers it starts run with the file's own values: a service's
 * environment (with `${VAR:-default}` taken at its default), its command and
 * user, and its health check as an argument list for `podman exec`.
 */

export interface Service {
  image?: string;
  user?: string;
  command?: string[];
  init?: boolean;
  environment?: Record<string, string>;
  healthcheck?: { test: string[] };
}

export interface Compose {
  services: Record<string, Service | undefined>;
}

/**
 * `-e NAME=value` arguments for `service`'s environment with `overrides` applied. A value
 * that compose requires from the shell (`${VAR:?...}`) must be among the overrides.
 */
export function serviceEnv(service: Service, overrides: Record<string, string>): string[] {
  const env = { ...service.environment };
  for (const [name, value] of Object.entries(env)) {
    if (Object.hasOwn(overrides, name)) continue;
    if (/\$\{\w+:\?/.test(value)) throw new Error(`${name} is required by the compose file (${value}); give it in the overrides`);
    env[name] = value.replace(/\$\{\w+:-([^}]*)\}/g, "$1");
  }
  return Object.entries({ ...env, ...overrides }).flatMap(([name, value]) => ["-e", `${name}=${value}`]);
}

/** The health check's command as an argument list (`CMD` form, or `CMD-SHELL` through sh). */
export function healthArgv(service: Service): string[] {
  const check = service.healthcheck?.test;
  if (check?.[0] === "CMD") return check.slice(1);
  if (check?.[0] === "CMD-SHELL") return ["sh", "-c", check[1]!];
  throw new Error(`no health check command in ${JSON.stringify(check)}`);
}
