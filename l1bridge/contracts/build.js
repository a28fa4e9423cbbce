#!/usr/bin/env node
// build.js - compile Inbox.sol with the pinned npm solc (0.8.28) through the
// standard-JSON interface, so every setting that changes the bytecode is
// written here: optimizer on with 200 runs, evmVersion cancun, no metadata
// hash appended (the bytecode depends on the source and these settings only,
// not on file paths or comments' IPFS hash).
//
//   node build.js SOLC_JS SOURCE OUTDIR
// writes OUTDIR/Inbox.abi (JSON) and OUTDIR/Inbox.bin (creation code, hex
// without 0x). Exits non-zero on any compiler error or warning.
'use strict';
const fs = require('fs');
const path = require('path');

const [solcPath, src, outDir] = process.argv.slice(2);
if (!solcPath || !src || !outDir) {
  console.error('usage: build.js SOLC_JS SOURCE OUTDIR');
  process.exit(2);
}
const solc = require(path.resolve(path.dirname(fs.realpathSync(solcPath)), 'index.js'));
if (!solc.version().startsWith('0.8.28+')) {
  console.error('build.js: need solc 0.8.28, got ' + solc.version());
  process.exit(1);
}
const input = {
  language: 'Solidity',
  sources: { 'Inbox.sol': { content: fs.readFileSync(src, 'utf8') } },
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: 'cancun',
    metadata: { bytecodeHash: 'none', appendCBOR: false },
    outputSelection: { 'Inbox.sol': { Inbox: ['abi', 'evm.bytecode.object'] } },
  },
};
const out = JSON.parse(solc.compile(JSON.stringify(input)));
let bad = false;
for (const e of out.errors || []) {
  console.error(e.formattedMessage || e.message);
  bad = true; // warnings too: the contract compiles clean or not at all
}
if (bad) process.exit(1);
const c = out.contracts['Inbox.sol'].Inbox;
fs.mkdirSync(outDir, { recursive: true });
fs.writeFileSync(path.join(outDir, 'Inbox.abi'), JSON.stringify(c.abi) + '\n');
fs.writeFileSync(path.join(outDir, 'Inbox.bin'), c.evm.bytecode.object + '\n');
