<?php
// RSS-during-upload probe: answer with the uploaded file's size.
// Uploads are arrays with keys name, mime, size, error, tmpName.
$worker = new RR\Worker();
while ($req = $worker->waitRequest()) {
    $uploads = $req->uploads;
    $file = $uploads['file'] ?? null;
    if (is_array($file) && isset($file['size'])) {
        $body = (string) $file['size'];
        $status = 200;
    } else {
        // Fall back to showing what arrived, so a shape mismatch is visible.
        $body = 'unexpected uploads: ' . var_export($uploads, true);
        $status = 500;
    }
    $worker->respond($status, $body, ['Content-Type' => 'text/plain']);
}
