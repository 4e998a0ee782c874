// Reads a node's kind-38421 announcements from a relay with nostr-tools, an implementation independent
// of the node's, and checks each one (id and BIP-340 signature) on a fresh copy, so no verdict cached
// by the subscription counts. Usage: node fetch_announcement.mjs ws://127.0.0.1:PORT <pubkey hex>
// Prints a JSON list of {event, verified, npub}.
import WebSocket from 'ws'
import { Relay, useWebSocketImplementation } from 'nostr-tools/relay'
import { verifyEvent } from 'nostr-tools/pure'
import * as nip19 from 'nostr-tools/nip19'

useWebSocketImplementation(WebSocket)
const [url, author] = process.argv.slice(2)
const relay = await Relay.connect(url)
const events = []
await new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error('the relay sent no EOSE within 10 s')), 10000)
  relay.subscribe([{ kinds: [38421], authors: [author] }], {
    onevent(event) { events.push(event) },
    oneose() { clearTimeout(timer); resolve() },
  })
})
relay.close()
const checked = events.map((event) => {
  const copy = JSON.parse(JSON.stringify(event))
  return { event: copy, verified: verifyEvent(JSON.parse(JSON.stringify(event))), npub: nip19.npubEncode(event.pubkey) }
})
console.log(JSON.stringify(checked))
process.exit(0)
