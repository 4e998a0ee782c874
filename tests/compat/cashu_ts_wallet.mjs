// The wallet side of the routstr-sdk replay (tests/compat/test_routstr_sdk.py): cashu-ts, the wallet
// library routstr-sdk's wallet adapters use, makes every token the replayed client pays with and
// receives every token the node hands back (refunds, X-Cashu change), at the test's Nutshell mint.
//
// A long-lived process spoken to in JSON lines: one request {id, cmd, ...} a line on stdin, one
// answer {id, ok: true, ...} or {id, ok: false, error} a line on stdout. Proofs are kept in memory,
// one purse per (mint, unit), the way a wallet adapter keeps them.
//
// Commands:
//   ping
//   send {mint, unit, amount}   -> {token, amount}     a token of exactly `amount`, minting what is missing
//   receive {token}             -> {amount, unit, mint} the token swapped into the purse at its mint
//   metadata {token}            -> {amount, unit, mint} read without a mint (getTokenMetadata)
//   balance {mint, unit}        -> {amount}
import * as readline from 'node:readline'
import { Wallet, MintQuoteState, getEncodedToken, getTokenMetadata } from '@cashu/cashu-ts'

const wallets = new Map() // "mint unit" -> Promise<Wallet>
const purses = new Map() // "mint unit" -> Proof[]

const keyOf = (mint, unit) => `${mint} ${unit}`
const sum = (proofs) => proofs.reduce((acc, p) => acc + Number(p.amount.toBigInt()), 0)

function walletFor(mint, unit) {
  const key = keyOf(mint, unit)
  if (!wallets.has(key)) {
    const wallet = new Wallet(mint, { unit })
    wallets.set(key, wallet.loadMint().then(() => wallet))
  }
  return wallets.get(key)
}

function purse(mint, unit) {
  const key = keyOf(mint, unit)
  if (!purses.has(key)) purses.set(key, [])
  return purses.get(key)
}

async function mintInto(mint, unit, amount) {
  // the test mint's FakeWallet pays its own invoices: the quote turns PAID at the first checks
  const wallet = await walletFor(mint, unit)
  const quote = await wallet.createMintQuoteBolt11(amount)
  for (let i = 0; ; i++) {
    const checked = await wallet.checkMintQuoteBolt11(quote.quote)
    if (checked.state === MintQuoteState.PAID) break
    if (i >= 200) throw new Error(`mint quote ${quote.quote} still ${checked.state}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  const proofs = await wallet.mintProofsBolt11(amount, quote.quote)
  purse(mint, unit).push(...proofs)
}

const commands = {
  async ping() {
    return {}
  },
  async send({ mint, unit, amount }) {
    const held = purse(mint, unit)
    const missing = amount - sum(held)
    if (missing > 0) await mintInto(mint, unit, missing + 64) // some spare for the next sends
    const wallet = await walletFor(mint, unit)
    const { keep, send } = await wallet.send(amount, purse(mint, unit))
    purses.set(keyOf(mint, unit), keep)
    const token = getEncodedToken({ mint, unit, proofs: send })
    return { token, amount: sum(send) }
  },
  async receive({ token }) {
    const meta = getTokenMetadata(token)
    const wallet = await walletFor(meta.mint, meta.unit)
    const proofs = await wallet.receive(token)
    purse(meta.mint, meta.unit).push(...proofs)
    return { amount: sum(proofs), unit: meta.unit, mint: meta.mint }
  },
  async metadata({ token }) {
    const meta = getTokenMetadata(token)
    return { amount: Number(meta.amount.toBigInt()), unit: meta.unit, mint: meta.mint }
  },
  async balance({ mint, unit }) {
    return { amount: sum(purse(mint, unit)) }
  },
}

// one command at a time: concurrent sends must not pick the same proofs
let queue = Promise.resolve()
const lines = readline.createInterface({ input: process.stdin })
lines.on('line', (line) => {
  queue = queue.then(async () => {
    let request
    try {
      request = JSON.parse(line)
      const handler = commands[request.cmd]
      if (!handler) throw new Error(`unknown command ${request.cmd}`)
      const answer = await handler(request)
      process.stdout.write(JSON.stringify({ id: request.id, ok: true, ...answer }) + '\n')
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error)
      process.stdout.write(JSON.stringify({ id: request?.id ?? null, ok: false, error: message }) + '\n')
    }
  })
})
lines.on('close', () => queue.then(() => process.exit(0)))
