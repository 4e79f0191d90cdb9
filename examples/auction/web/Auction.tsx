// An auction: the current price and every bid, from the topic's history
// (a late joiner gets them all) followed by the bids broadcast live. Bids
// go to the back end, which alone decides whether they stand.
import { useHistory } from "@chorus/react";
import { useEffect, useState } from "react";
import type { Bid } from "../backend.js";

interface AuctionInfo {
  title: string;
  price: number;
  endsAt: number;
}

export function Auction({ auctionId, userId }: { auctionId: string; userId: string }) {
  const { messages } = useHistory<Bid>(`auction/${auctionId}`, 1000);
  const [info, setInfo] = useState<AuctionInfo>();
  const [amount, setAmount] = useState("");
  const [refused, setRefused] = useState("");

  useEffect(() => {
    fetch(`/api/auctions/${auctionId}`)
      .then((r) => r.json())
      .then(setInfo, () => {});
  }, [auctionId]);

  const bids = messages.filter((m) => m.event === "bid").map((m) => m.data);
  // Bids only ever raise the price: the highest one seen is the price (the table's, if it is ahead).
  const price = Math.max(info?.price ?? 0, ...bids.map((b) => b.amount));
  const leader = bids.at(-1)?.userId;

  const bid = async () => {
    setRefused("");
    const response = await fetch(`/api/auctions/${auctionId}/bids`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ userId, amount: Number(amount) }),
    });
    if (!response.ok) setRefused((await response.json()).error);
    else setAmount("");
  };

  return (
    <div>
      <h1>{info?.title ?? auctionId}</h1>
      <div id="price">${price.toFixed(2)}</div>
      <p id="leader">{leader ? `${leader === userId ? "You lead" : `${leader} leads`}` : "No bids yet"}</p>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          void bid();
        }}
      >
        <input value={amount} onChange={(e) => setAmount(e.target.value)} placeholder={`${(price + 1).toFixed(2)} or more`} inputMode="decimal" aria-label="amount" />
        <button type="submit">Bid</button>
      </form>
      <p id="refused">{refused}</p>
      <h2>Bids</h2>
      <ol id="bids">
        {bids.map((b) => (
          <li key={b.bidId}>
            {b.userId}: ${b.amount.toFixed(2)}
          </li>
        ))}
      </ol>
    </div>
  );
}
