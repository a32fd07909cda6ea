// Per-call figures for this package (the component on Node through jco) on
// bench/compare's cases:
//   node js/bench/percall.mjs <free port> <block start>
// prints `case<TAB>peer<TAB>median ns per call` lines, like bench/peers.mjs.
// <block start> is the first of 1000 free ports; the first 999 are held here.
import net from 'node:net';
import { createInstance } from '../src/index.js';

const [free, start] = process.argv.slice(2).map(Number);
const PEER = 'this project, Node (jco)';
const BATCHES = 31;
const BATCH_NS = 20_000_000n;
const ports = createInstance();

// Median ns per call over BATCHES batches, each about BATCH_NS long.
function perCall(call) {
  let calls = 0;
  const calibrate = process.hrtime.bigint();
  while (process.hrtime.bigint() - calibrate < BATCH_NS / 4n) {
    call();
    calls++;
  }
  const perBatch = Math.max(calls * 4, 1);
  // A call that takes most of a batch on its own gets fewer batches.
  const batches = calls <= 1 ? 9 : BATCHES;
  const samples = [];
  for (let b = 0; b < batches; b++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < perBatch; i++) {
      call();
    }
    samples.push(Number(process.hrtime.bigint() - t0) / perBatch);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(batches / 2)];
}

function expect(got, want, what) {
  if (got !== want) {
    throw new Error(`${what}: answered ${got}, expected ${want}`);
  }
}

function hold(port) {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on('error', reject);
    server.listen({ port, host: '127.0.0.1' }, () => resolve(server));
  });
}

function report(name, ns) {
  console.log(`${name}\t${PEER}\t${ns.toFixed(0)}`);
}

report('is-free-port, free port', perCall(() => expect(ports.isFreePort(free), true, 'free port')));

const holder = await hold(0);
const held = holder.address().port;
report('is-free-port, held port', perCall(() => expect(ports.isFreePort(held), false, 'held port')));
holder.close();

const block = [];
for (let port = start; port < start + 999; port++) {
  block.push(await hold(port));
}
report('get-free-port, 1000 candidates, first 999 held', perCall(() =>
  expect(ports.getFreePort({ start, end: start + 1000 }), start + 999, 'range')));
for (const server of block) {
  server.close();
}

report('get-free-port(none, false), OS choice', perCall(() => {
  const port = ports.getFreePort(undefined, { strict: false });
  if (!(port > 0)) {
    throw new Error(`no port: ${port}`);
  }
}));
