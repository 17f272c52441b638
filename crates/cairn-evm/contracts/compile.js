// Compiles Cairn's contracts with solc-js (the version pinned in package.json) and writes each contract's
// creation bytecode as hex to bin/NAME.hex. The settings are the ones below, recorded in bin/SETTINGS.json.
const fs = require('fs');
const solc = require('solc');
const files = ['CairnToken.sol', 'CairnPair.sol', 'CairnRouter.sol'];
const settings = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: 'cancun',
  outputSelection: { '*': { '*': ['evm.bytecode.object'] } },
};
const input = { language: 'Solidity', sources: {}, settings };
for (const f of files) input.sources[f] = { content: fs.readFileSync(__dirname + '/' + f, 'utf8') };
const out = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (out.errors || []).filter((e) => e.severity === 'error');
if (errors.length) { console.error(errors.map((e) => e.formattedMessage).join('\n')); process.exit(1); }
fs.mkdirSync(__dirname + '/bin', { recursive: true });
for (const f of files) {
  const name = f.replace('.sol', '');
  fs.writeFileSync(`${__dirname}/bin/${name}.hex`, out.contracts[f][name].evm.bytecode.object + '\n');
}
fs.writeFileSync(`${__dirname}/bin/SETTINGS.json`, JSON.stringify({ compiler: 'solc-js ' + solc.version(), settings }, null, 2) + '\n');
console.log('compiled with', solc.version());
