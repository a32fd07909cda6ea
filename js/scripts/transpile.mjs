// Transpiles the component into gen/ with jco, unless gen/ was already made
// from the same bytes by the same jco. The component is the one the build
// commits (host-example/component/hbutils_port.wasm); HBUTILS_PORT_WASM names
// another, such as a fresh `cargo build --target wasm32-wasip2 --profile
// component -p hbutils-port` (target/wasm32-wasip2/component/hbutils_port.wasm).
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const js = resolve(here, '..');
const out = join(js, 'gen');
const wasm = resolve(process.env.HBUTILS_PORT_WASM || join(js, '..', 'host-example', 'component', 'hbutils_port.wasm'));

if (!existsSync(wasm)) {
  console.error(`error: no component at ${wasm}.
Build one with \`cargo build --target wasm32-wasip2 --profile component -p hbutils-port\` in the repository
and run again with HBUTILS_PORT_WASM=<repository>/target/wasm32-wasip2/component/hbutils_port.wasm.`);
  process.exit(1);
}

// jco's package.json is not among its exports, so it is read by path.
const jcoDir = join(js, 'node_modules', '@bytecodealliance', 'jco');
const jcoPackage = JSON.parse(readFileSync(join(jcoDir, 'package.json'), 'utf8'));
const jcoVersion = jcoPackage.version;
const bytes = readFileSync(wasm);
const stamp = `${createHash('sha256').update(bytes).digest('hex')} jco ${jcoVersion}\n`;
const stampFile = join(out, 'SOURCE');
if (existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp) {
  process.exit(0);
}

rmSync(out, { recursive: true, force: true });
// Sync instantiation: the shim's socket calls are synchronous anyway, and it
// lets a caller make an instance per tenant without awaiting.
execFileSync(process.execPath, [
  join(jcoDir, jcoPackage.bin.jco), 'transpile', wasm,
  '--out-dir', out, '--name', 'hbutils_port', '--instantiation', 'sync', '--quiet',
], { stdio: 'inherit' });
writeFileSync(stampFile, stamp);
console.error(`transpiled ${wasm} (${bytes.length} bytes) with jco ${jcoVersion} into ${out}`);
