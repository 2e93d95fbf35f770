<?php
// Same as workers/json.php, the classic way: $_SERVER and $_GET.
$headerCount = 0;
foreach ($_SERVER as $k => $_) {
    if (strncmp($k, 'HTTP_', 5) === 0) {
        $headerCount++;
    }
}
header('Content-Type: application/json');
echo json_encode([
    'host' => $_SERVER['HTTP_HOST'] ?? null,
    'user_agent' => $_SERVER['HTTP_USER_AGENT'] ?? null,
    'accept' => $_SERVER['HTTP_ACCEPT'] ?? null,
    'name' => $_GET['name'] ?? null,
    'id' => isset($_GET['id']) ? (int) $_GET['id'] : null,
    'header_count' => $headerCount,
]);
