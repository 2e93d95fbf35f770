//! CalDAV and CardDAV.

use crate::client;
use crate::client::{basic, seen, Answer, Session};
use crate::harness::Server;
use crate::scenario::{compare, expect, Record};

/// One DAV step of a scenario: sends, checks the status on both servers, records what was seen
/// with the values that differ between runs of a collection (sync tokens, ctags) masked.
fn dav_step(
    s: &mut Session,
    rec: &mut Record,
    server: &Server,
    (label, method, path): (&str, &str, &str),
    headers: &[(&str, &str)],
    body: &str,
    want: u16,
) -> Answer {
    let a = s.send(method, path, headers, body.to_string());
    expect(server, label, &a, want);
    let mut seen = seen(&a, server, &[]);
    for el in ["d:sync-token", "s:sync-token", "cs:getctag"] {
        seen.body = client::mask_element(&seen.body, el);
    }
    seen.body = client::sort_responses(&seen.body);
    rec.push(label, seen);
    a
}

const EVENT: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//rr//tests//EN\r\n\
BEGIN:VEVENT\r\nUID:rr-nc-event-1\r\nDTSTAMP:20261201T100000Z\r\n\
DTSTART:20261224T180000Z\r\nDTEND:20261224T200000Z\r\nSUMMARY:alice's secret dinner\r\n\
END:VEVENT\r\nEND:VCALENDAR\r\n";

const CARD: &str = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:rr-nc-card-1\r\nFN:Carol Example\r\n\
EMAIL:carol@example.invalid\r\nEND:VCARD\r\n";

#[test]
fn caldav_and_carddav() {
    let (_g, install) = install_or_skip!();
    compare(&install, 1, |install, server, rec| {
        let alice = install.user("alice");
        let bob = install.user("bob");
        let a_auth = basic(&alice.name, &alice.app_password);
        let b_auth = basic(&bob.name, &bob.app_password);
        let ha = [("Authorization", a_auth.as_str())];
        let no_trash = [
            ("Authorization", a_auth.as_str()),
            ("X-NC-CalDAV-No-Trashbin", "1"),
        ];
        let cal = "/remote.php/dav/calendars/alice/rr-nc-cal/";
        let event = format!("{cal}dinner.ics");
        let book = "/remote.php/dav/addressbooks/users/alice/rr-nc-book/";
        let card = format!("{book}carol.vcf");
        // Left over by an interrupted run; not compared.
        let mut s = Session::new(server);
        s.send("DELETE", cal, &no_trash, Vec::new());
        s.send("DELETE", book, &ha, Vec::new());

        let xml = [
            ("Authorization", a_auth.as_str()),
            ("Content-Type", "application/xml; charset=utf-8"),
        ];
        let mut s = Session::new(server);
        let step =
            |s: &mut Session, rec: &mut Record, what, headers: &[(&str, &str)], body, want| {
                dav_step(s, rec, server, what, headers, body, want)
            };
        let mkcalendar = "<?xml version=\"1.0\"?><c:mkcalendar xmlns:d=\"DAV:\" \
            xmlns:c=\"urn:ietf:params:xml:ns:caldav\"><d:set><d:prop>\
            <d:displayname>rr test</d:displayname></d:prop></d:set></c:mkcalendar>";
        step(
            &mut s,
            rec,
            ("MKCALENDAR", "MKCALENDAR", cal),
            &xml,
            mkcalendar,
            201,
        );
        let ics = [
            ("Authorization", a_auth.as_str()),
            ("Content-Type", "text/calendar; charset=utf-8"),
        ];
        step(&mut s, rec, ("PUT event", "PUT", &event), &ics, EVENT, 201);
        let a = step(&mut s, rec, ("GET event", "GET", &event), &ha, "", 200);
        assert!(
            a.text().contains("alice's secret dinner"),
            "{}",
            server.name()
        );
        let query = "<?xml version=\"1.0\"?><c:calendar-query xmlns:d=\"DAV:\" \
            xmlns:c=\"urn:ietf:params:xml:ns:caldav\"><d:prop><d:getetag/><c:calendar-data/>\
            </d:prop><c:filter><c:comp-filter name=\"VCALENDAR\"><c:comp-filter name=\"VEVENT\"/>\
            </c:comp-filter></c:filter></c:calendar-query>";
        let depth1 = [
            ("Authorization", a_auth.as_str()),
            ("Depth", "1"),
            ("Content-Type", "application/xml; charset=utf-8"),
        ];
        let a = step(
            &mut s,
            rec,
            ("REPORT calendar-query", "REPORT", cal),
            &depth1,
            query,
            207,
        );
        assert!(a.text().contains("rr-nc-event-1"), "{}", server.name());

        let mkcol = "<?xml version=\"1.0\"?><d:mkcol xmlns:d=\"DAV:\" \
            xmlns:card=\"urn:ietf:params:xml:ns:carddav\"><d:set><d:prop><d:resourcetype>\
            <d:collection/><card:addressbook/></d:resourcetype>\
            <d:displayname>rr test</d:displayname></d:prop></d:set></d:mkcol>";
        step(
            &mut s,
            rec,
            ("MKCOL addressbook", "MKCOL", book),
            &xml,
            mkcol,
            201,
        );
        let vcf = [
            ("Authorization", a_auth.as_str()),
            ("Content-Type", "text/vcard; charset=utf-8"),
        ];
        step(&mut s, rec, ("PUT card", "PUT", &card), &vcf, CARD, 201);
        // After a card: the contact birthdays calendar exists in both runs.
        step(
            &mut s,
            rec,
            (
                "PROPFIND calendar home",
                "PROPFIND",
                "/remote.php/dav/calendars/alice/",
            ),
            &depth1,
            "",
            207,
        );
        let a = step(&mut s, rec, ("GET card", "GET", &card), &ha, "", 200);
        assert!(
            a.text().contains("carol@example.invalid"),
            "{}",
            server.name()
        );
        let query = "<?xml version=\"1.0\"?><card:addressbook-query xmlns:d=\"DAV:\" \
            xmlns:card=\"urn:ietf:params:xml:ns:carddav\"><d:prop><d:getetag/>\
            <card:address-data/></d:prop></card:addressbook-query>";
        let a = step(
            &mut s,
            rec,
            ("REPORT addressbook-query", "REPORT", book),
            &depth1,
            query,
            207,
        );
        assert!(a.text().contains("Carol Example"), "{}", server.name());

        // Bob, on the same worker right after alice, sees none of it.
        let hb = [("Authorization", b_auth.as_str())];
        let mut bs = Session::new(server);
        let a = step(
            &mut bs,
            rec,
            ("bob GET alice's event", "GET", &event),
            &hb,
            "",
            404,
        );
        assert!(!a.text().contains("secret dinner"), "{}", server.name());
        let a = step(
            &mut bs,
            rec,
            ("bob GET alice's card", "GET", &card),
            &hb,
            "",
            404,
        );
        assert!(!a.text().contains("carol@"), "{}", server.name());
        let bob_depth1 = [("Authorization", b_auth.as_str()), ("Depth", "1")];
        let a = step(
            &mut bs,
            rec,
            (
                "bob PROPFIND his calendar home",
                "PROPFIND",
                "/remote.php/dav/calendars/bob/",
            ),
            &bob_depth1,
            "",
            207,
        );
        assert!(!a.text().contains("rr-nc-cal"), "{}", server.name());
        step(
            &mut bs,
            rec,
            (
                "bob PROPFIND alice's calendar home",
                "PROPFIND",
                "/remote.php/dav/calendars/alice/",
            ),
            &bob_depth1,
            "",
            404,
        );
        // And alice still sees her own after bob.
        let a = step(
            &mut s,
            rec,
            ("GET event again", "GET", &event),
            &ha,
            "",
            200,
        );
        assert!(
            a.text().contains("alice's secret dinner"),
            "{}",
            server.name()
        );

        step(&mut s, rec, ("DELETE card", "DELETE", &card), &ha, "", 204);
        step(
            &mut s,
            rec,
            ("DELETE addressbook", "DELETE", book),
            &ha,
            "",
            204,
        );
        step(
            &mut s,
            rec,
            ("DELETE event", "DELETE", &event),
            &no_trash,
            "",
            204,
        );
        step(
            &mut s,
            rec,
            ("DELETE calendar", "DELETE", cal),
            &no_trash,
            "",
            204,
        );
        step(
            &mut s,
            rec,
            ("GET deleted event", "GET", &event),
            &ha,
            "",
            404,
        );
    });
}
