// Ports for the tests: from the OS, or blocks checked free below the Linux
// ephemeral range (32768-60999), where outgoing connections would take ports
// from under a test. Never a fixed number.
import net from 'node:net';

/** A net.Server listening on host:port (port 0: the OS's choice). */
export function listen(host, port = 0, ipv6Only = false) {
  return new Promise((resolve, reject) => {
    const server = net.createServer((socket) => socket.destroy());
    server.once('error', reject);
    server.listen({ host, port, ipv6Only, exclusive: true }, () => resolve(server));
  });
}

export function close(server) {
  return new Promise((resolve) => server.close(() => resolve()));
}

export function portOf(server) {
  return server.address().port;
}

/** Whether a Node listener could take `port` on `host` right now. */
export async function canListen(host, port, ipv6Only = false) {
  try {
    await close(await listen(host, port, ipv6Only));
    return true;
  } catch (error) {
    if (error.code === 'EADDRINUSE') {
      return false;
    }
    throw error;
  }
}

let ipv6;
/** Null when ::1 works here, else why not (for a skip message). */
export async function noIpv6() {
  if (ipv6 === undefined) {
    try {
      await close(await listen('::1', 0, true));
      ipv6 = null;
    } catch (error) {
      ipv6 = `this machine has no IPv6 loopback (listening on [::1]:0 failed: ${error.code ?? error.message})`;
    }
  }
  return ipv6;
}

/** Skips `t` with a printed reason when there is no ::1; true if skipped. */
export async function skipWithoutIpv6(t) {
  const reason = await noIpv6();
  if (reason !== null) {
    console.log(`skipped "${t.name}": ${reason}`);
    t.skip(reason);
    return true;
  }
  return false;
}

/** A port the OS just chose on 127.0.0.1, released again. */
export async function osPort() {
  const server = await listen('127.0.0.1', 0);
  const port = portOf(server);
  await close(server);
  return port;
}

async function freeEverywhere(port) {
  const hosts = [['127.0.0.1', false], ['0.0.0.0', false]];
  if ((await noIpv6()) === null) {
    hosts.push(['::1', true], ['::', false]);
  }
  for (const [host, v6only] of hosts) {
    if (!(await canListen(host, port, v6only))) {
      return false;
    }
  }
  return true;
}

/**
 * The first of `size` consecutive ports, each free on every loopback and
 * wildcard address when checked, between 10000 and the ephemeral range.
 */
export async function freeBlock(size) {
  const top = 32768 - size;
  for (let attempt = 0; attempt < 100; attempt++) {
    const start = 10000 + Math.floor(Math.random() * (top - 10000));
    let ok = true;
    for (let port = start; port < start + size && ok; port++) {
      ok = await freeEverywhere(port);
    }
    if (ok) {
      return start;
    }
  }
  throw new Error(`no block of ${size} free ports between 10000 and 32768`);
}

/** Asserts `fn` throws a PortError-like error with this code (and message). */
export function throwsCode(assert, fn, code, message) {
  assert.throws(fn, (error) => {
    assert.ok(error instanceof Error, `${error} is an Error`);
    assert.equal(error.code, code, `code of: ${error.message}`);
    if (message !== undefined) {
      assert.match(error.message, message);
    }
    return true;
  });
}
