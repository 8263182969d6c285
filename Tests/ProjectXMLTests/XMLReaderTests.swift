import HavelCore
@testable import ProjectXML
import Testing

@Suite struct XMLReaderTests {
    @Test func keepsLineAndColumnOfElementsAndAttributes() throws {
        let text = """
        <?xml version="1.0"?>
        <a xmlns="urn:x">
          <b  key="v">text</b>
        \t<c/>
        </a>
        """
        let doc = try XMLReader.parse(text, file: "t.xml")
        #expect(doc.root.location == SourceLocation(file: "t.xml", line: 2, column: 1))
        let b = try #require(doc.root.firstElement(named: "b"))
        #expect(b.location.line == 3 && b.location.column == 3)
        #expect(b.attribute("key")?.location.column == 7)
        #expect(b.textLocation.column == 15)
        #expect(doc.root.firstElement(named: "c")?.location.column == 2)
        #expect(b.name.namespace == "urn:x")
    }

    @Test func columnsCountCharactersNotBytes() throws {
        let doc = try XMLReader.parse("<a>äöü<b/></a>", file: "u.xml")
        #expect(doc.root.firstElement(named: "b")?.location.column == 7)
    }

    @Test func resolvesPrefixesAndReferences() throws {
        let doc = try XMLReader.parse("""
        <p:root xmlns:p="urn:p" xmlns:q="urn:q" q:at="1 &amp; 2 &#x41;&#66;"><child>&lt;&gt;&quot;&apos;</child></p:root>
        """, file: "n.xml")
        #expect(doc.root.name == QualifiedName("root", namespace: "urn:p", prefix: "p"))
        #expect(doc.root.attributes.first?.name.namespace == "urn:q")
        #expect(doc.root.attributes.first?.value == "1 & 2 AB")
        #expect(doc.root.firstElement(named: "child")?.text == "<>\"'")
        #expect(doc.root.firstElement(named: "child")?.name.namespace == nil)
    }

    @Test func keepsCDATAAndNormalisesLineEnds() throws {
        let doc = try XMLReader.parse("<a><![CDATA[x < y && z]]>\r\nline</a>", file: "c.xml")
        #expect(doc.root.text == "x < y && z\nline")
    }

    @Test func writerRoundTripsTheTree() throws {
        let original = """
        <!-- head --><ns0:R xmlns:ns0="urn:e" xmlns:xi="urn:xi" a="q&quot;&#10;"><t>a &amp; b</t><![CDATA[]]]]><![CDATA[>]]><e/></ns0:R>
        """
        let first = try XMLReader.parse(original, file: "w.xml")
        let written = XMLWriter.write(first)
        let second = try XMLReader.parse(written, file: "w.xml")
        #expect(XMLWriter.write(second) == written)
        #expect(second.root.attributeValue("a") == "q\"\n")
        #expect(second.root.firstElement(named: "t")?.text == "a & b")
        #expect(second.root.namespaceDeclarations.map(\.prefix) == ["ns0", "xi"])
    }

    @Test(arguments: [
        ("<a><b></a>", 1, "does not match <b>"),
        ("<a>\n<b>\n", 3, "<b> opened at line 2 is not closed"),
        ("<a x=1/>", 1, "expected a quoted value"),
        ("<a x='1' x='2'/>", 1, "appears twice"),
        ("<a>&nbsp;</a>", 1, "undefined entity &nbsp;"),
        ("<a>fish & chips</a>", 1, "'&' must start a reference"),
        ("<p:a/>", 1, "namespace prefix p of <p:a> is not declared"),
        ("<a/>\n<b/>", 2, "content after the root element"),
        ("", 1, "the file is empty"),
        ("<a>\n\n<!-- never closed", 3, "unterminated comment"),
        ("<a b='<'/>", 1, "'<' is not allowed in an attribute value"),
        ("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a/>", 1, "encoding \"ISO-8859-1\" is not supported"),
        ("<a>&#0;</a>", 1, "not a valid XML character"),
    ])
    func refusesMalformedInputWithItsPlace(text: String, line: Int, message: String) {
        #expect {
            try XMLReader.parse(text, file: "m.xml")
        } throws: { error in
            guard let error = error as? HavelError else { return false }
            return error.location?.line == line && error.message.contains(message)
        }
    }

    @Test func refusesDoctypeBeforeReadingAnyEntity() {
        let xxe = """
        <?xml version="1.0"?>
        <!DOCTYPE r [ <!ENTITY x SYSTEM "file:///etc/passwd"> ]>
        <r>&x;</r>
        """
        #expect {
            try XMLReader.parse(xxe, file: "x.xml")
        } throws: { error in
            let e = error as? HavelError
            return e?.location?.line == 2 && e?.message.contains("not allowed") == true && !(e?.message.contains("root:") ?? true)
        }
    }

    @Test func refusesDeepNesting() {
        let deep = String(repeating: "<a>", count: XMLReader.maximumDepth + 5)
        #expect(throws: HavelError.self) { try XMLReader.parse(deep, file: "d.xml") }
    }

    @Test func refusesInvalidUTF8AndControlCharacters() {
        #expect {
            try XMLReader.parse([0x3C, 0x61, 0x3E, 0xC3, 0x28, 0x3C, 0x2F, 0x61, 0x3E], file: "b.xml")
        } throws: { error in
            (error as? HavelError)?.message.contains("invalid UTF-8") == true
        }
        #expect {
            try XMLReader.parse([0x3C, 0x61, 0x3E, 0x00, 0x01, 0x3C, 0x2F, 0x61, 0x3E], file: "b.xml")
        } throws: { error in
            (error as? HavelError)?.message.contains("control character U+0000") == true
        }
    }

    @Test func spansGiveEachElementsBytesInTheFile() throws {
        // A byte-order mark, a multi-byte character and a '>' inside an attribute value must not shift the offsets.
        let text = "\u{FEFF}<r a=\"x>y\">\n  <é-name>ä</é-name><empty  />\n  <!-- c --><n><m/></n></r>\n"
        let bytes = Array(text.utf8)
        let (document, spans) = try XMLReader.parseWithSpans(bytes, file: "s.xml")
        func slice(_ element: XMLElement, _ part: (XMLElementSpan) -> Range<Int>) throws -> String {
            let span = try #require(spans[element.location])
            return String(decoding: bytes[part(span)], as: UTF8.self)
        }
        let root = document.root
        #expect(try slice(root, { $0.start..<$0.contentStart }) == "<r a=\"x>y\">")
        #expect(try slice(root, { $0.contentEnd..<$0.end }) == "</r>")
        let accented = root.elements[0], empty = root.elements[1], outer = root.elements[2]
        #expect(try slice(accented, { $0.start..<$0.end }) == "<é-name>ä</é-name>")
        #expect(try slice(accented, { $0.contentStart..<$0.contentEnd }) == "ä")
        #expect(try slice(empty, { $0.start..<$0.end }) == "<empty  />")
        #expect(spans[empty.location]?.selfClosed == true)
        #expect(try slice(outer, { $0.contentStart..<$0.contentEnd }) == "<m/>")
        #expect(spans.count == 5)
    }
}
