// Verify the DKIM signatures of .eml files with mailauth (a second, independent DKIM
// implementation), asking the given DNS server for the keys, and print, as one JSON
// object keyed by path, each signature's domain, selector and result:
//   node dkim-verify.js 127.0.0.1:PORT a.eml b.eml ...
"use strict";
const fs = require("fs");
const dns = require("dns");
const { dkimVerify } = require("mailauth/lib/dkim/verify");

async function main() {
  const [server, ...paths] = process.argv.slice(2);
  const resolver = new dns.promises.Resolver();
  resolver.setServers([server]);
  const found = {};
  for (const path of paths) {
    const result = await dkimVerify(fs.readFileSync(path), {
      resolver: (name, rrtype) => resolver.resolve(name, rrtype),
    });
    found[path] = result.results.map((r) => ({
      domain: r.signingDomain,
      selector: r.selector,
      result: r.status.result,
      comment: r.status.comment || null,
    }));
  }
  process.stdout.write(JSON.stringify(found));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
