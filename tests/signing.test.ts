/**
 * Ed25519 over the exact body bytes: what verifies and what does not, keys
 * from `keygen.ts` and from openssl, several verify keys for rotation, and
 * the same signature from Bun and from Deno.
 */
import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { writeKeys } from "../scripts/keygen.ts";
import { generateKeyPair, parseSigningKey, parseVerifyKeys, signBody, verifyBody } from "../shared/signing.ts";
import { ROOT, removeDirs, tempDir } from "./helpers.ts";

const body = new TextEncoder().encode('{"v":1,"id":"abc","command":"ping"}');
const pair = () => {
  const { signingPem, verifyPem } = generateKeyPair();
  return { signing: parseSigningKey(signingPem), verify: parseVerifyKeys(verifyPem) };
};

describe("verifyBody", () => {
  const { signing, verify } = pair();
  const signature = signBody(body, signing);

  test("accepts the signature of the exact bytes", () => expect(verifyBody(body, signature, verify)).toBe(true));

  test("refuses the signature after one byte of the body changed", () => {
    const changed = body.slice();
    changed[5] ^= 1;
    expect(verifyBody(changed, signature, verify)).toBe(false);
  });

  test("refuses a signature made by another key", () => {
    expect(verifyBody(body, signBody(body, pair().signing), verify)).toBe(false);
  });

  const malformed: [string, unknown][] = [
    ["no signature", undefined],
    ["a number", 42],
    ["a Buffer", Buffer.from(signature, "base64")],
    ["an empty string", ""],
    ["base64 of the wrong length", signature.slice(4)],
    ["characters outside base64", `${signature.slice(0, 85)}!==`],
  ];
  for (const [name, value] of malformed) {
    test(`refuses ${name} without throwing`, () => expect(verifyBody(body, value, verify)).toBe(false));
  }

  test("accepts a signature by any of several keys (rotation)", () => {
    const old = pair();
    const keys = [...old.verify, ...verify];
    expect(verifyBody(body, signBody(body, old.signing), keys)).toBe(true);
    expect(verifyBody(body, signature, keys)).toBe(true);
  });

  test("is deterministic: the same key and bytes give the same signature", () => {
    expect(signBody(body, signing)).toBe(signature);
  });
});

describe("keys", () => {
  test("keygen.ts writes a private key readable only by its owner and a public key for every worker", () => {
    const dir = tempDir();
    try {
      const { signing, verify } = writeKeys(join(dir, "keys"));
      expect(statSync(signing).mode & 0o777).toBe(0o600);
      expect(statSync(verify).mode & 0o777).toBe(0o644);
      const signature = signBody(body, parseSigningKey(readFileSync(signing, "utf8")));
      expect(verifyBody(body, signature, parseVerifyKeys(readFileSync(verify, "utf8")))).toBe(true);
      expect(() => writeKeys(join(dir, "keys"))).toThrow("already exists");
    } finally {
      removeDirs(dir);
    }
  });

  test("a file with several public keys gives them all", () => {
    const texts = [generateKeyPair().verifyPem, generateKeyPair().verifyPem];
    expect(parseVerifyKeys(texts.join("\n"))).toHaveLength(2);
  });

  test("keys that are not Ed25519, or not public, are refused", () => {
    const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 });
    expect(() => parseVerifyKeys(rsa.publicKey.export({ type: "spki", format: "pem" }).toString())).toThrow("expected an Ed25519 key");
    expect(() => parseSigningKey(rsa.privateKey.export({ type: "pkcs8", format: "pem" }).toString())).toThrow("expected an Ed25519 key");
    expect(() => parseVerifyKeys(generateKeyPair().signingPem)).toThrow("no PEM public key found");
  });

  const openssl = spawnSync("openssl", ["version"]).status === 0;
  test.skipIf(!openssl)("keys made by openssl sign and verify, and openssl verifies our signature", () => {
    const dir = tempDir();
    try {
      const run = (...args: string[]) => {
        const result = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
        if (result.status !== 0) throw new Error(`openssl ${args.join(" ")}: ${result.stderr}`);
      };
      run("genpkey", "-algorithm", "ed25519", "-out", "signing.pem");
      run("pkey", "-in", "signing.pem", "-pubout", "-out", "verify.pem");
      const signing = parseSigningKey(readFileSync(join(dir, "signing.pem"), "utf8"));
      const signature = signBody(body, signing);
      expect(verifyBody(body, signature, parseVerifyKeys(readFileSync(join(dir, "verify.pem"), "utf8")))).toBe(true);

      writeFileSync(join(dir, "body"), body);
      writeFileSync(join(dir, "body.sig"), Buffer.from(signature, "base64"));
      run("pkeyutl", "-verify", "-pubin", "-inkey", "verify.pem", "-rawin", "-in", "body", "-sigfile", "body.sig");
    } finally {
      removeDirs(dir);
    }
  });
});

test("Deno makes the same signature as Bun from the same key and bytes", () => {
  const { signingPem } = generateKeyPair();
  const script = `
    import { parseSigningKey, signBody } from ${JSON.stringify(join(ROOT, "shared/signing.ts"))};
    const [pem, text] = Deno.args;
    console.log(signBody(new TextEncoder().encode(text), parseSigningKey(pem)));
  `;
  const text = new TextDecoder().decode(body);
  const deno = spawnSync(join(ROOT, "node_modules/.bin/deno"), ["eval", "--quiet", "--ext=ts", script, signingPem, text], {
    cwd: ROOT,
    encoding: "utf8",
  });
  expect(deno.stderr).toBe("");
  expect(deno.stdout.trim()).toBe(signBody(body, parseSigningKey(signingPem)));
}, 30_000);
