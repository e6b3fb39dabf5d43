-- wrk script: each connection is a scraper that waits 0.5-1.5 s (1 s on average) between
-- scrapes, as Prometheus's scrape loop does, and sends Prometheus's headers (OpenMetrics
-- preferred, gzip accepted). wrk's latency is then the time of each scrape, not of a queue of
-- back-to-back requests (bench/run.sh, "paced scrapers").
wrk.headers["Accept"] = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
wrk.headers["Accept-Encoding"] = "gzip"

function delay()
  return math.random(500, 1500)
end
