// The reference LiveMetrics, with our import names (useRealtime for
// useAerostack) and an id on each figure for the test.
import { useRealtime as useAerostack } from "@chorus/react";
import { useEffect, useState } from "react";

export function LiveMetrics() {
  const { realtime } = useAerostack();
  const [metrics, setMetrics] = useState({
    activeUsers: 0,
    ordersToday: 0,
    revenue: 0,
  });

  useEffect(() => {
    // Subscribe to the metrics broadcast channel
    const channel = realtime.channel("dashboard/metrics");

    channel
      .on("metrics:update", ({ data }) => {
        setMetrics(data);
      })
      .subscribe();

    // Also subscribe to orders table for real-time order count
    const ordersChannel = realtime.channel("orders");

    ordersChannel
      .on("INSERT", ({ data }) => {
        setMetrics((prev) => ({
          ...prev,
          ordersToday: prev.ordersToday + 1,
          revenue: prev.revenue + data.total,
        }));
      })
      .subscribe();

    return () => {
      channel.unsubscribe();
      ordersChannel.unsubscribe();
    };
  }, [realtime]);

  return (
    <div style={{ display: "grid", gridTemplateColumns: "1fr 1fr 1fr", gap: 16 }}>
      <div data-metric="users">
        <h3>Active Users</h3>
        <p>{metrics.activeUsers}</p>
      </div>
      <div data-metric="orders">
        <h3>Orders Today</h3>
        <p>{metrics.ordersToday}</p>
      </div>
      <div data-metric="revenue">
        <h3>Revenue</h3>
        <p>${metrics.revenue.toFixed(2)}</p>
      </div>
    </div>
  );
}
