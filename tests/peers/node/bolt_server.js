#!/usr/bin/env node
'use strict';
// A SOFA RPC server (sofa-rpc-node 2.10.0 over sofa-bolt-node 2.0.1: Bolt v1, hessian2)
// on 127.0.0.1 for black-box tests.
//
//   node bolt_server.js PORT [--service NAME] [--version V] [--tag TAG]
//
// PORT 0 picks a free port. Serves NAME (default com.mosn.test.EchoService), version V
// (default 1.0, so the Bolt header `service` is "NAME:V"), with methods
//   echo(String s)  -> "<TAG>:<s>"              (TAG default "bolt")
//   sleep(int ms)   -> "<TAG>:slept <ms>" after ms milliseconds; when that is past the
//                      request's Bolt timeout, sofa-rpc-node sends no answer at all
//   fail()          -> throws: a Bolt response with status SERVER_EXCEPTION (2)
// Prints "READY <port>" once listening, then one event line per connection, call and
// heartbeat (see common.js: CONN, CLOSE, CALL, HEARTBEAT). Exits when stdin reaches
// EOF (run it with stdin open), and on SIGTERM / SIGINT.

const { parseArgs, usage, serve } = require('./common');

const { pos, opts } = parseArgs(process.argv.slice(2));
if (pos.length !== 1) usage('usage: bolt_server.js PORT [--service NAME] [--version V] [--tag TAG]');

serve({
  protocol: require('sofa-bolt-node'),
  port: Number(pos[0]),
  interfaceName: opts.service || 'com.mosn.test.EchoService',
  version: opts.version || '1.0',
  group: 'SOFA',
  tag: opts.tag || 'bolt',
}).catch(err => {
  process.stderr.write('bolt_server.js: ' + (err && err.stack || err) + '\n');
  process.exit(1);
});
