// The Apache HttpClient 4.5 client of the incident replay (make incident),
// built against Debian's libhttpclient-java: a pooling connection manager of
// -pool connections per route, talking to a keep-alive server that closes
// idle connections.
//
//   java PoolClient leak  URL POOL PACE_MS WAIT_MS HOLD_S
//       the bug of the original incident: each response is never consumed
//       nor closed, so its connection stays leased; when the server closes
//       it, the socket stays in CLOSE_WAIT. Requests go out every PACE_MS
//       until one gets ConnectionPoolTimeoutException after WAIT_MS: the
//       pool is dry. Prints "leaked N" after each response, then "dry" with
//       the time, and holds until standard input reaches EOF or HOLD_S.
//   java PoolClient fixed URL POOL PACE_MS WAIT_MS REQUESTS IDLE_EVERY IDLE_PAUSE_MS
//       the fix from docs/runbooks.md: try-with-resources on the response
//       and EntityUtils.consume, idle connections evicted in the background
//       before the server closes them, a bounded wait for a connection.
//       Sends REQUESTS requests, pausing IDLE_PAUSE_MS after every
//       IDLE_EVERY, prints "fixed ok N" and exits; any failure exits 1.
import java.io.IOException;
import java.util.concurrent.TimeUnit;

import org.apache.http.client.config.RequestConfig;
import org.apache.http.client.methods.CloseableHttpResponse;
import org.apache.http.client.methods.HttpGet;
import org.apache.http.conn.ConnectionPoolTimeoutException;
import org.apache.http.impl.client.CloseableHttpClient;
import org.apache.http.impl.client.HttpClientBuilder;
import org.apache.http.impl.client.HttpClients;
import org.apache.http.impl.conn.PoolingHttpClientConnectionManager;
import org.apache.http.util.EntityUtils;

public final class PoolClient {
    public static void main(String[] args) throws Exception {
        if (args.length < 5) {
            usage("too few arguments");
        }
        String mode = args[0];
        String url = args[1];
        int pool = positive(args[2], "POOL");
        int paceMs = positive(args[3], "PACE_MS");
        int waitMs = positive(args[4], "WAIT_MS");
        if (mode.equals("leak") && args.length == 6) {
            leak(url, pool, paceMs, waitMs, positive(args[5], "HOLD_S"));
        } else if (mode.equals("fixed") && args.length == 8) {
            fixed(url, pool, paceMs, waitMs, positive(args[5], "REQUESTS"),
                    positive(args[6], "IDLE_EVERY"), positive(args[7], "IDLE_PAUSE_MS"));
        } else {
            usage("unknown mode \"" + mode + "\" or wrong number of arguments");
        }
    }

    // builder is what both modes share: one pool of `pool` connections for
    // the route, and a bounded wait for a connection (the runbook's advice,
    // and how the caller learns that the pool is dry).
    private static HttpClientBuilder builder(int pool, int waitMs) {
        PoolingHttpClientConnectionManager cm = new PoolingHttpClientConnectionManager();
        cm.setMaxTotal(pool);
        cm.setDefaultMaxPerRoute(pool);
        return HttpClients.custom()
                .setConnectionManager(cm)
                .setDefaultRequestConfig(RequestConfig.custom().setConnectionRequestTimeout(waitMs).build());
    }

    private static void leak(String url, int pool, int paceMs, int waitMs, int holdS) throws Exception {
        CloseableHttpClient client = builder(pool, waitMs).build();
        int leaked = 0;
        for (int i = 1; i <= 2 * pool; i++) {
            try {
                // The bug: the response is neither consumed nor closed.
                CloseableHttpResponse response = client.execute(new HttpGet(url));
                if (response.getStatusLine().getStatusCode() != 200) {
                    fail("request " + i + ": " + response.getStatusLine());
                }
                leaked++;
                System.out.println("leaked " + leaked);
            } catch (ConnectionPoolTimeoutException e) {
                System.out.println("dry " + System.currentTimeMillis() + ": request " + i + " got "
                        + e.getClass().getSimpleName() + " (" + e.getMessage() + ") after " + waitMs
                        + " ms; " + leaked + " responses leaked");
                holdUntilStdinEOF(holdS);
                return;
            }
            Thread.sleep(paceMs);
        }
        fail("the pool never ran dry: " + (2 * pool) + " requests, " + leaked + " responses leaked");
    }

    private static void fixed(String url, int pool, int paceMs, int waitMs, int requests, int idleEvery,
            int idlePauseMs) throws Exception {
        // Idle connections are closed in the background after 1 s, before
        // the server's 2 s idle timeout.
        try (CloseableHttpClient client = builder(pool, waitMs)
                .evictExpiredConnections()
                .evictIdleConnections(1, TimeUnit.SECONDS)
                .build()) {
            for (int i = 1; i <= requests; i++) {
                try (CloseableHttpResponse response = client.execute(new HttpGet(url))) {
                    EntityUtils.consume(response.getEntity());
                    if (response.getStatusLine().getStatusCode() != 200) {
                        fail("request " + i + ": " + response.getStatusLine());
                    }
                } catch (IOException e) {
                    fail("request " + i + ": " + e);
                }
                Thread.sleep(i % idleEvery == 0 ? idlePauseMs : paceMs);
            }
        }
        System.out.println("fixed ok " + requests);
    }

    private static void holdUntilStdinEOF(int holdS) throws InterruptedException {
        Thread reader = new Thread(() -> {
            try {
                while (System.in.read() != -1) {
                    // discard
                }
            } catch (IOException e) {
                // treated as EOF
            }
        });
        reader.setDaemon(true);
        reader.start();
        reader.join(TimeUnit.SECONDS.toMillis(holdS));
    }

    private static int positive(String s, String name) {
        try {
            int v = Integer.parseInt(s);
            if (v > 0) {
                return v;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        usage(name + " \"" + s + "\": want a positive integer");
        return 0;
    }

    private static void usage(String why) {
        System.err.println("PoolClient: " + why + "\nusage: PoolClient leak URL POOL PACE_MS WAIT_MS HOLD_S\n"
                + "       PoolClient fixed URL POOL PACE_MS WAIT_MS REQUESTS IDLE_EVERY IDLE_PAUSE_MS");
        System.exit(2);
    }

    private static void fail(String why) {
        System.err.println("PoolClient: " + why);
        System.exit(1);
    }
}
