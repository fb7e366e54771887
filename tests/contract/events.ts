// A typed client program against the TypeScript that openapi-typescript
// generates from openapi/arbiter.yaml (check.sh writes it to
// build/contract/arbiter.ts). It compiles under tsc --strict only while each
// event's `data` is typed by its `action` and a policy's category rule is an
// object: a `Record<string, never>` or `unknown` anywhere below is a compile
// error, and so is each @ts-expect-error line that stops being one.
import type { components, paths } from "../../build/contract/arbiter";

type Event = components["schemas"]["Event"];
type FeedItem = components["schemas"]["FeedItem"];
type EventList =
  paths["/v1/cases/{id}/events"]["get"]["responses"][200]["content"]["application/json"];
type CategoryRule = components["schemas"]["CategoryRule"];

// What a payment system reads: the refund instructed, and the amounts an
// offer, a counter-offer or a ruling named.
export function refundCents(e: Event | FeedItem): number | null {
  switch (e.action) {
    case "refund.instructed":
      return e.data.total_cents;
    case "offer":
    case "counter_offer":
      return e.data.refund_cents;
    case "rule":
      return e.data.refund_cents ?? null;
    default:
      return null;
  }
}

export function offers(list: EventList): number[] {
  const out: number[] = [];
  for (const e of list.items) {
    if (e.action === "offer") out.push(e.data.refund_cents);
  }
  return out;
}

// The expiry events name their deadline; a breach says who it went to.
export function escalatedTo(e: Event): string | null {
  if (e.action === "sla.breached") return e.data.escalated_to ?? null;
  if (e.action === "deadline.approaching") return e.data.deadline;
  return null;
}

export function window(r: CategoryRule): string {
  return `${r.category}: ${r.window_days ?? "-"} days, ${r.window_km ?? "-"} km -> ${r.remedy}`;
}

const offer: Event = {
  seq: 2, at: "2026-11-23T06:23:33.520Z", actor: { role: "seller", id: "39e7c8227529" },
  action: "offer", from_state: "awaiting_seller", to_state: "awaiting_buyer_reply",
  data: { refund_cents: 50000, message: null }, policy_version: "2026.2-default",
  prev_hash: "0".repeat(64), hash: "1".repeat(64),
};
export const offered: number | null = refundCents(offer);

if (offer.action === "offer") {
  // @ts-expect-error refund_cents is a number, not a string (a `never` would pass)
  const wrong: string = offer.data.refund_cents;
  // @ts-expect-error an offer carries no refund instruction
  const total: number = offer.data.total_cents;
  void wrong;
  void total;
}

// @ts-expect-error an offer's data needs refund_cents
export const badOffer: Event = { ...offer, data: { message: "no amount" } };

export function badRule(r: CategoryRule): number {
  // @ts-expect-error a category is a name, not a number
  return r.category;
}
