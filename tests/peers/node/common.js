'use strict';
// Shared code of the SOFA Bolt and Dubbo test peers (bolt_server.js, bolt_client.js,
// dubbo_server.js, dubbo_client.js). Both protocols run on sofa-rpc-node's RpcServer and
// RpcClient; the protocol object (sofa-bolt-node or dubbo-remoting) is what differs.
// Plain Node, no build step; the packages come from tests/peers/node/node_modules
// (scripts/setup.sh runs `npm ci` here).

const util = require('util');
const { RpcServer, RpcService } = require('sofa-rpc-node').server;
const { RpcClient } = require('sofa-rpc-node').client;
const clientUtils = require('sofa-rpc-node/lib/client/utils');

// sofa-rpc-node wants a logger. Keep stdout for the READY / event / JSON lines:
// warnings and errors go to stderr, info and debug are dropped.
const logger = {
  debug() {},
  info() {},
  warn(...args) { process.stderr.write('WARN ' + util.format(...args) + '\n'); },
  error(...args) { process.stderr.write('ERROR ' + util.format(...args) + '\n'); },
};

function emit(line) {
  process.stdout.write(line + '\n');
}

/** Splits argv into positionals and `--name value` options (`--flag` alone: true). */
function parseArgs(argv, flags = []) {
  const pos = [];
  const opts = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('--')) {
      const name = a.slice(2);
      if (flags.includes(name)) {
        opts[name] = true;
      } else {
        if (i + 1 >= argv.length) usage(`option ${a} needs a value`);
        opts[name] = argv[++i];
      }
    } else {
      pos.push(a);
    }
  }
  return { pos, opts };
}

function usage(msg) {
  process.stderr.write(msg + '\n');
  process.exit(2);
}

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

/** The methods every test service has. `tag` tells servers apart behind a proxy. */
function testService(tag) {
  return {
    async echo(s) {
      return tag + ':' + s;
    },
    async sleep(ms) {
      await sleep(Number(ms));
      return tag + ':slept ' + ms;
    },
    async fail() {
      const err = new Error('requested failure from ' + tag);
      err.ignoreLog = true; // an expected failure: no stack on stderr
      // Nor in the answer (see TestService#convertResult): sofa-bolt-node sends an
      // error's JS stack, file paths and all, as the RpcServerException's stackTrace,
      // which would make captures differ between checkouts.
      err.stack = err.name + ': ' + err.message;
      throw err;
    },
  };
}

/**
 * Starts a sofa-rpc-node RpcServer speaking `protocol` on 127.0.0.1:port (0: any),
 * prints `READY <port>`, then one line per event:
 *   CONN {"peer":"127.0.0.1:P"}                         a connection was accepted
 *   CLOSE {"peer":"127.0.0.1:P"}                        it closed
 *   CALL {"peer":..,"id":..,"service":..,"method":..,"args":[..],"props":{..},"timeout":..}
 *   HEARTBEAT {"peer":..,"id":..}                      a heartbeat (the server acks it)
 * Exits when stdin reaches EOF, and on SIGTERM / SIGINT.
 */
async function serve({ protocol, port, interfaceName, version, group, tag }) {
  class LoopbackRpcServer extends RpcServer {
    // RpcServer listens on every address; the tests want loopback only.
    _startServer(p) {
      const server = require('net').createServer();
      server.once('error', err => { this.emit('error', err); });
      server.on('connection', socket => { this._handleSocket(socket); });
      server.listen(p, '127.0.0.1', () => {
        if (p === this.publishPort && p === 0) {
          this.publishPort = server.address().port;
        }
      });
      return server;
    }

    async _handleRequest(req, conn) {
      const d = req.data || {};
      emit('CALL ' + JSON.stringify({
        peer: conn.remoteAddress,
        id: req.packetId,
        service: d.serverSignature,
        method: d.methodName,
        args: d.args,
        props: d.requestProps || null,
        timeout: req.options && req.options.timeout,
      }));
      return super._handleRequest(req, conn);
    }
  }

  // RpcService wraps an Error a method throws as {$class: 'java.lang.Exception', $: err},
  // and sofa-bolt-node then answers with a *new* Error built from the message, whose
  // stack is the encoder's own (absolute paths into node_modules). Handing the thrown
  // Error over as it is makes the encoder use it, with the stack trimmed above.
  class TestService extends RpcService {
    convertResult(req, result) {
      return result instanceof Error ? result : super.convertResult(req, result);
    }
  }

  const server = new LoopbackRpcServer({
    logger,
    port,
    protocol,
    version,
    group,
    serviceClass: TestService,
    // No registry: nothing is published, clients connect directly.
    killTimeout: 1000,
  });
  server.addService({ interfaceName, version, group }, testService(tag));
  server.on('error', err => { logger.warn('server error: %s', err && err.message); });
  server.on('connection', conn => {
    const peer = conn.remoteAddress;
    emit('CONN ' + JSON.stringify({ peer }));
    conn._decoder.on('heartbeat', hb => {
      emit('HEARTBEAT ' + JSON.stringify({ peer, id: hb.packetId }));
    });
    conn.once('close', () => emit('CLOSE ' + JSON.stringify({ peer })));
  });
  await server.start();
  emit('READY ' + server.publishPort);

  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
  process.on('SIGTERM', () => process.exit(0));
  process.on('SIGINT', () => process.exit(0));
}

function pct(sorted, p) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

/**
 * Runs one client case against HOST:PORT directly (sofa-rpc-node's `serverHost`, no
 * registry) and prints one JSON line; exits 0 when the case held, 1 when not.
 */
async function runClient({ protocol, target, interfaceName, version, group, kase, caseArgs, opts }) {
  const responseTimeout = Number(opts.timeout || 3000);
  const client = new RpcClient({ logger, protocol });
  client.on('error', err => { logger.warn('client error: %s', err && err.message); });
  const consumer = client.createConsumer({
    interfaceName,
    version,
    group,
    serverHost: target,
    responseTimeout,
  });
  await consumer.ready();
  const str = s => ({ $class: 'java.lang.String', $: s });
  const call = (method, args, timeout) =>
    consumer.invoke(method, args, { responseTimeout: timeout || responseTimeout });
  const connections = () => client.connectionManager.connections.size;
  const errText = err => (err && (err.name + ': ' + err.message)) || String(err);

  let out;
  const t0 = Date.now();
  switch (kase) {
    case 'echo': {
      // echo N CONCURRENCY: N calls, CONCURRENCY in flight on the one connection;
      // every answer must be "<tag>:<its own request>".
      const n = Number(caseArgs[0] || 1);
      const conc = Math.max(1, Number(caseArgs[1] || 1));
      const pad = opts.size ? 'x'.repeat(Number(opts.size)) : '';
      const expectTag = opts['expect-tag'];
      let next = 0;
      let matched = 0;
      let mismatched = 0;
      let errors = 0;
      const samples = [];
      const tags = {};
      const lat = [];
      const worker = async () => {
        while (next < n) {
          const i = next++;
          const msg = `req-${i}-${Math.random().toString(36).slice(2, 10)}${pad}`;
          const start = Date.now();
          try {
            const res = await call('echo', [ str(msg) ]);
            lat.push(Date.now() - start);
            const ok = typeof res === 'string' && res.endsWith(':' + msg);
            const tag = ok ? res.slice(0, res.length - msg.length - 1) : null;
            if (ok && (!expectTag || tag === expectTag)) {
              matched++;
              tags[tag] = (tags[tag] || 0) + 1;
            } else {
              mismatched++;
              if (samples.length < 5) samples.push(`call ${i}: sent ${msg.slice(0, 40)} got ${String(res).slice(0, 60)}`);
            }
          } catch (err) {
            errors++;
            if (samples.length < 5) samples.push(`call ${i}: ${errText(err)}`);
          }
        }
      };
      await Promise.all(Array.from({ length: conc }, worker));
      lat.sort((a, b) => a - b);
      out = {
        ok: matched === n, calls: n, concurrency: conc, matched, mismatched, errors,
        error_samples: samples, tags, connections: connections(),
        p50_ms: pct(lat, 0.5), p99_ms: pct(lat, 0.99), max_ms: lat.length ? lat[lat.length - 1] : null,
      };
      break;
    }
    case 'sleep': {
      // sleep MS: one call the server answers after MS milliseconds.
      const ms = Number(caseArgs[0] || 100);
      try {
        const res = await call('sleep', [{ $class: 'int', $: ms }]);
        out = { ok: typeof res === 'string' && res.endsWith(':slept ' + ms), result: res };
      } catch (err) {
        out = { ok: false, error: errText(err) };
      }
      break;
    }
    case 'timeout': {
      // timeout SLEEP_MS TIMEOUT_MS: the call must fail with the client's own
      // RpcResponseTimeoutError after about TIMEOUT_MS.
      const ms = Number(caseArgs[0] || 2000);
      const limit = Number(caseArgs[1] || 300);
      try {
        const res = await call('sleep', [{ $class: 'int', $: ms }], limit);
        out = { ok: false, result: res, error: 'answered although it should time out' };
      } catch (err) {
        out = { ok: err.name === 'RpcResponseTimeoutError', error: errText(err), error_name: err.name };
      }
      break;
    }
    case 'fail': {
      // fail: the server method throws; the error must come back (not a timeout).
      try {
        const res = await call('fail', []);
        out = { ok: false, result: res, error: 'no error' };
      } catch (err) {
        const msg = errText(err);
        out = { ok: msg.includes('requested failure'), error: msg, error_name: err.name };
      }
      break;
    }
    case 'no_method': {
      try {
        const res = await call('noSuchMethod', []);
        out = { ok: false, result: res, error: 'no error' };
      } catch (err) {
        out = { ok: err.name !== 'RpcResponseTimeoutError', error: errText(err), error_name: err.name };
      }
      break;
    }
    case 'heartbeat': {
      // One echo (to open the connection), then the library's own heartbeat
      // (RpcConnection#heartbeat, normally sent after 30 s idle); the ack must come
      // back with the heartbeat's id.
      out = await heartbeat(client, call, str, 'hb');
      break;
    }
    case 'capture': {
      // For fixtures: echo("hello"), fail(), then a heartbeat, one after another.
      let echo;
      let fail;
      try {
        echo = await call('echo', [ str('hello') ]);
      } catch (err) {
        echo = errText(err);
      }
      try {
        fail = await call('fail', []);
      } catch (err) {
        fail = errText(err);
      }
      const hb = await heartbeat(client, call, str, null);
      out = { ok: /:hello$/.test(echo) && /requested failure/.test(fail) && hb.ok, echo, fail, heartbeat: hb };
      break;
    }
    default:
      usage(`unknown case ${kase}`);
  }
  out.case = kase;
  out.ms = Date.now() - t0;
  emit(JSON.stringify(out));
  process.exit(out.ok ? 0 : 1);
}

async function heartbeat(client, call, str, first) {
  if (first) {
    try {
      await call('echo', [ str(first) ]);
    } catch (err) {
      return { ok: false, error: 'echo before heartbeat: ' + err.message };
    }
  }
  const conn = Array.from(client.connectionManager.connections.values())[0];
  if (!conn || !conn.isConnected) return { ok: false, error: 'no connection' };
  const ack = new Promise(resolve => {
    conn._decoder.once('heartbeat_ack', resolve);
    setTimeout(() => resolve(null), 3000);
  });
  conn._lastActiveTime = 0; // heartbeat() only sends after maxIdleTime without traffic
  conn.heartbeat();
  const id = clientUtils.id; // the id heartbeat() just took from the shared counter
  const res = await ack;
  if (!res) return { ok: false, id, error: 'no heartbeat ack within 3 s' };
  return { ok: res.packetId === id, id, ack_id: res.packetId };
}

module.exports = { logger, emit, parseArgs, usage, serve, runClient };
