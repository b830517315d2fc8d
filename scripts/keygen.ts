/**
 * Writes a fresh Ed25519 key pair for a fleet: `DIR/signing.pem` (private,
 * mode 0600, for the webhook only) and `DIR/verify.pem` (public, mode 0644,
 * copied to every worker). Refuses to overwrite existing keys.
 *
 *   bun scripts/keygen.ts DIR
 */
import { chmodSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { generateKeyPair } from "../shared/signing.ts";

export function writeKeys(dir: string): { signing: string; verify: string } {
  const signing = join(dir, "signing.pem");
  const verify = join(dir, "verify.pem");
  for (const file of [signing, verify]) {
    if (existsSync(file)) throw new Error(`${file} already exists; move it away to make a new key pair`);
  }
  mkdirSync(dir, { recursive: true });
  const { signingPem, verifyPem } = generateKeyPair();
  writeFileSync(signing, signingPem, { mode: 0o600 });
  writeFileSync(verify, verifyPem, { mode: 0o644 });
  // The mode option is filtered by the umask; set it exactly.
  chmodSync(signing, 0o600);
  chmodSync(verify, 0o644);
  return { signing, verify };
}

if (import.meta.main) {
  const dir = process.argv[2];
  if (!dir || dir.startsWith("-")) {
    console.error("usage: bun scripts/keygen.ts DIR   (writes DIR/signing.pem and DIR/verify.pem)");
    process.exit(2);
  }
  try {
    const { signing, verify } = writeKeys(dir);
    console.log(`wrote ${signing} (private: the webhook's ARBEIDER_SIGNING_KEY_FILE)`);
    console.log(`wrote ${verify} (public: every worker's ARBEIDER_VERIFY_KEY_FILE)`);
  } catch (error) {
    console.error(`keygen: ${(error as Error).message}`);
    process.exit(1);
  }
}
