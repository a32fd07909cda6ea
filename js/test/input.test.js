import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createInstance } from '../src/index.js';
import { osPort, throwsCode } from './helpers.js';

const ports = createInstance();

test('port 0 is invalid-argument, in the component\'s words', () => {
  throwsCode(assert, () => ports.isFreePort(0), 'invalid-argument', /^port 0 is not a port; it asks the OS to pick one$/);
  throwsCode(assert, () => ports.probePort(0), 'invalid-argument', /port 0/);
  throwsCode(assert, () => ports.isFreeOnWildcard(0), 'invalid-argument', /port 0/);
});

test('a port beyond 65535, negative or not an integer is invalid-argument, before the component', () => {
  for (const bad of [70000, 65536, -1, 1.5, NaN, Infinity, '8080', null, undefined, 8080n]) {
    throwsCode(assert, () => ports.isFreePort(bad), 'invalid-argument', /^a port is an integer from 1 to 65535, not /);
    throwsCode(assert, () => ports.probePort(bad), 'invalid-argument', /a port is an integer/);
    throwsCode(assert, () => ports.isFreeOnWildcard(bad), 'invalid-argument', /a port is an integer/);
  }
  throwsCode(assert, () => ports.getFreePort([8000, 70000]), 'invalid-argument', /not 70000$/);
  throwsCode(assert, () => ports.getFreePort([8000, 1.5]), 'invalid-argument', /not 1.5$/);
});

test('a step of 0 or a bound beyond 65536 is invalid-argument, in the component\'s words', () => {
  throwsCode(assert, () => ports.getFreePort({ start: 8000, end: 8100, step: 0 }), 'invalid-argument',
    /^range\(8000, 8100, 0\): step must not be zero$/);
  throwsCode(assert, () => ports.getFreePort({ start: 8000, end: 70000 }), 'invalid-argument', /70000/);
  throwsCode(assert, () => ports.reservePorts(2, { start: 8000, end: 8100, step: 0 }), 'invalid-argument', /step/);
});

test('a malformed range, count or option is invalid-argument, saying what was wrong', () => {
  throwsCode(assert, () => ports.getFreePort({ start: 8000.5, end: 8100 }), 'invalid-argument',
    /^a range start must be an integer from 0 to 4294967295, not 8000.5$/);
  throwsCode(assert, () => ports.getFreePort({ start: 8000 }), 'invalid-argument', /a range end must be an integer/);
  throwsCode(assert, () => ports.getFreePort({ start: 8000, end: 8100, step: 0.5 }), 'invalid-argument', /a range step/);
  throwsCode(assert, () => ports.getFreePort({ from: 8000, end: 8100 }), 'invalid-argument', /not "from"/);
  throwsCode(assert, () => ports.getFreePort('8000..8100'), 'invalid-argument', /candidate ports are/);
  throwsCode(assert, () => ports.getFreePort(8000), 'invalid-argument', /candidate ports are/);
  throwsCode(assert, () => ports.getFreePort(undefined, { strict: 'no' }), 'invalid-argument', /strict must be true or false/);
  throwsCode(assert, () => ports.getFreePort(undefined, { stric: false }), 'invalid-argument', /unknown option "stric"/);
  throwsCode(assert, () => ports.getFreePorts(1.5), 'invalid-argument', /a count must be an integer/);
  throwsCode(assert, () => ports.getFreePorts(-1), 'invalid-argument', /a count must be an integer/);
  throwsCode(assert, () => ports.getFreePorts(0), 'invalid-argument', /count/);
  throwsCode(assert, () => ports.reservePorts(0), 'invalid-argument', /count/);
  throwsCode(assert, () => ports.getFreePorts(100000), 'invalid-argument', /^count 100000 is more than/);
  throwsCode(assert, () => ports.getFreePorts(2 ** 32), 'invalid-argument', /a count must be an integer/);
});

test('after all that bad input the instance still answers', async () => {
  const port = await osPort();
  assert.equal(ports.isFreePort(port), true);
});
