<?php

declare(strict_types=1);

namespace RR\Tests\Feature;

use Doctrine\DBAL\Connection;
use Doctrine\DBAL\Driver\PDO\SQLite\Driver;
use Doctrine\DBAL\Exception\UniqueConstraintViolationException;
use Doctrine\DBAL\ParameterType;
use PHPUnit\Framework\TestCase;
use RR\Nextcloud\Db\StatementCacheConnection;
use RR\Nextcloud\Db\StatementCacheDriver;

/**
 * RR\Nextcloud\Db\StatementCacheDriver with Doctrine DBAL from the Nextcloud install named by
 * RR_NEXTCLOUD_ROOT, on a SQLite file in WAL mode (as Nextcloud uses it), with a second, plain
 * PDO connection writing beside it: kept statements give the same answers, a query run again
 * while its results are read gets its own statement, and no kept statement keeps a read of the
 * database open once nothing uses it (else the other connection's writes would stay unseen).
 */
final class NextcloudStatementCacheTest extends TestCase
{
    private string $file;
    private Connection $db;
    private \PDO $other;

    public static function setUpBeforeClass(): void
    {
        $root = (string)getenv('RR_NEXTCLOUD_ROOT');
        if ($root === '' || !is_file($root . '/3rdparty/autoload.php')) {
            self::markTestSkipped('set RR_NEXTCLOUD_ROOT to a Nextcloud install (Doctrine DBAL comes from its 3rdparty/)');
        }
        require_once $root . '/3rdparty/autoload.php';
    }

    protected function setUp(): void
    {
        $this->file = tempnam(sys_get_temp_dir(), 'rr-statements-');
        $this->db = new Connection(['path' => $this->file], new StatementCacheDriver(new Driver()));
        $this->db->executeStatement('PRAGMA journal_mode = WAL');
        $this->db->executeStatement('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)');
        for ($i = 1; $i <= 5; $i++) {
            $this->db->executeStatement('INSERT INTO t (id, v) VALUES (?, ?)', [$i, "v$i"]);
        }
        $this->other = new \PDO('sqlite:' . $this->file);
        $this->other->setAttribute(\PDO::ATTR_ERRMODE, \PDO::ERRMODE_EXCEPTION);
    }

    protected function tearDown(): void
    {
        $this->db->close();
        unset($this->other);
        foreach (['', '-wal', '-shm'] as $suffix) {
            @unlink($this->file . $suffix);
        }
    }

    private function cache(): StatementCacheConnection
    {
        $connection = $this->db->getWrappedConnection();
        self::assertInstanceOf(StatementCacheConnection::class, $connection);
        return $connection;
    }

    private function rows(): int
    {
        return (int)$this->db->executeQuery('SELECT COUNT(*) FROM t WHERE id > ?', [0])->fetchOne();
    }

    public function testTheSameSqlUsesOneKeptStatementWithEachCallsParameters(): void
    {
        $kept = $this->cache()->count();
        foreach ([3, 1, 5, 2] as $id) {
            self::assertSame("v$id", $this->db->executeQuery('SELECT v FROM t WHERE id = ?', [$id])->fetchOne());
        }
        self::assertSame($kept + 1, $this->cache()->count(), 'one statement for the four queries');
        self::assertFalse($this->db->executeQuery('SELECT v FROM t WHERE id = ?', [99])->fetchOne());
    }

    public function testAQueryRunAgainWhileItsResultsAreReadGetsItsOwnStatement(): void
    {
        $sql = 'SELECT id FROM t WHERE id >= ? ORDER BY id';
        $outer = $this->db->executeQuery($sql, [1]);
        $seen = [];
        while (($id = $outer->fetchOne()) !== false) {
            $seen[] = (int)$id;
            // The same SQL, read to the end inside the loop.
            self::assertCount(5 - (int)$id + 1, $this->db->executeQuery($sql, [(int)$id])->fetchFirstColumn());
        }
        self::assertSame([1, 2, 3, 4, 5], $seen, 'the outer read was not disturbed');
    }

    public function testAResultDroppedHalfReadEndsItsReadOfTheDatabase(): void
    {
        $result = $this->db->executeQuery('SELECT id FROM t WHERE id > ? ORDER BY id', [0]);
        self::assertSame(1, (int)$result->fetchOne());
        unset($result);
        $this->other->exec("INSERT INTO t (id, v) VALUES (6, 'v6')");
        self::assertSame(6, $this->rows(), 'the other connection\'s row is seen');
        // And this connection can write after the other one did.
        self::assertSame(1, $this->db->executeStatement('UPDATE t SET v = ? WHERE id = ?', ['w6', 6]));
        self::assertSame('w6', $this->other->query('SELECT v FROM t WHERE id = 6')->fetchColumn());
    }

    public function testAStatementHeldWhileTheOtherConnectionWritesSeesWhatItWouldWithoutTheCache(): void
    {
        $statement = $this->db->prepare('SELECT id FROM t WHERE id > ? ORDER BY id');
        $first = $statement->executeQuery([0]);
        self::assertSame(1, (int)$first->fetchOne());
        $this->other->exec("INSERT INTO t (id, v) VALUES (6, 'v6')");
        // Re-executed by its holder: a new read, which sees the row (as PDO would).
        self::assertCount(6, $statement->executeQuery([0])->fetchFirstColumn());
    }

    public function testTheEndOfARequestEndsReadsStillHeldAndForgetsTheirStatements(): void
    {
        $held = $this->db->executeQuery('SELECT id FROM t WHERE id > ? ORDER BY id', [0]);
        self::assertSame(1, (int)$held->fetchOne());
        $kept = $this->cache()->count();
        $this->other->exec("INSERT INTO t (id, v) VALUES (6, 'v6')");
        $this->cache()->endRequest();
        self::assertSame($kept - 1, $this->cache()->count(), 'a statement still in use is not kept');
        self::assertSame(6, $this->rows(), 'the held read no longer hides the other connection\'s row');
        unset($held);
        self::assertSame([1, 2, 3, 4, 5, 6], array_map('intval', $this->db->executeQuery('SELECT id FROM t WHERE id > ? ORDER BY id', [0])->fetchFirstColumn()));
    }

    public function testAStatementWhoseExecutionFailedIsNotGivenOutAgain(): void
    {
        $insert = 'INSERT INTO t (id, v) VALUES (?, ?)';
        try {
            $this->db->executeStatement($insert, [1, 'duplicate']);
            self::fail('the duplicate id was inserted');
        } catch (UniqueConstraintViolationException) {
        }
        // pdo_sqlite leaves a statement whose first step hit a constraint halted: given out
        // again, every later execution would fail ("bad parameter or other API misuse").
        self::assertSame(1, $this->db->executeStatement($insert, [7, 'v7']));
        self::assertSame(1, $this->db->executeStatement($insert, [8, 'v8']));
        self::assertSame(['v7', 'v8'], $this->db->executeQuery('SELECT v FROM t WHERE id > ? ORDER BY id', [6])->fetchFirstColumn());
    }

    public function testAnEarlierUsesParametersAreNotBoundAnyMore(): void
    {
        $run = static function (\Doctrine\DBAL\Driver\Connection $connection, array $values): array {
            $statement = $connection->prepare('SELECT ? AS a, ? AS b');
            foreach ($values as $position => $value) {
                $statement->bindValue($position, $value, ParameterType::STRING);
            }
            return $statement->execute()->fetchNumeric();
        };
        $plain = (new Driver())->connect(['path' => $this->file]);
        $cache = $this->cache();
        self::assertSame(['x', 'secret'], $run($cache, [1 => 'x', 2 => 'secret']));
        // The second use binds only the first: what a new statement gives for the other.
        $expected = $run($plain, [1 => 'y']);
        self::assertSame('y', $expected[0]);
        self::assertSame($expected, $run($cache, [1 => 'y']), 'the first use\'s value is not bound any more');
    }

    public function testAtMostMaxStatementsAreKept(): void
    {
        for ($i = 0; $i < StatementCacheConnection::MAX + 20; $i++) {
            self::assertSame('v1', $this->db->executeQuery("SELECT v FROM t WHERE id = ? AND $i = $i", [1])->fetchOne());
        }
        self::assertSame(StatementCacheConnection::MAX, $this->cache()->count());
    }
}
