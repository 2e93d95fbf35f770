<?php
// Row (c): read a few request headers and query parameters, answer with JSON.
// Header values may come as a string or as a list of values; take the first.
function rr_first($v) {
    return is_array($v) ? ($v[0] ?? null) : $v;
}
function rr_header(array $headers, string $name) {
    if (array_key_exists($name, $headers)) {
        return rr_first($headers[$name]);
    }
    foreach ($headers as $k => $v) {
        if (strcasecmp((string) $k, $name) === 0) {
            return rr_first($v);
        }
    }
    return null;
}

$worker = new RR\Worker();
while ($req = $worker->waitRequest()) {
    $headers = $req->headers;
    $query = $req->query;
    $body = json_encode([
        'host' => rr_header($headers, 'host'),
        'user_agent' => rr_header($headers, 'user-agent'),
        'accept' => rr_header($headers, 'accept'),
        'name' => $query['name'] ?? null,
        'id' => isset($query['id']) ? (int) $query['id'] : null,
        'header_count' => count($headers),
    ]);
    $worker->respond(200, $body, ['Content-Type' => 'application/json']);
}
