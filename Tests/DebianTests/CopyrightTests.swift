import Debian
import Testing

/// Modelled on coreutils' and perl's machine-readable copyright files.
let dep5Copyright = """
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: coreutils
Comment: This is the Debian GNU/Linux packaged version of the GNU core
 utilities.
Source: ftp://ftp.gnu.org/gnu/coreutils
Files-Excluded:
 doc/FAQ

Files: *
Copyright: (C) 1984-2008 Free Software Foundation, Inc.
License: GPL-3+

Files: lib/fts.c
       lib/fts_.h
Copyright: (C) 2004-2020, 2008 Free Software Foundation, Inc.
           (c) 1989, 1990, 1993, 1994  The Regents of the University of California.  All rights reserved.
License: GPL-3+ and BSD-4-clause-UC

Files: cpan/Some-Module/*
Copyright:
 Copyright (C) 1998 Richard Braakman
 Copyright (C) 2002 Josip Rodin
License: GPL-1+ or Artistic

Files: src/ssl.c
Copyright: 2010 Someone <someone@example.org>
License: GPL-2+ with OpenSSL exception

License: GPL-3+
   This program is free software: you can redistribute it and/or modify
   it under the terms of the GNU General Public License as published by
   the Free Software Foundation, either version 3 of the License, or
   (at your option) any later version.
 .
 On Debian systems, the complete text of the GNU General
 Public License can be found in `/usr/share/common-licenses/GPL-3'.

License: BSD-4-clause-UC
 * Redistribution and use in source and binary forms, with or without
 * modification, are permitted provided that the following conditions
 * are met:

License: Zlib
 This software is provided 'as-is', without any express or implied
 warranty.
"""

/// Modelled on libc6's free-form copyright file.
let freeFormLibc = """
This is the Debian prepackaged version of the GNU C Library version 2.36.

It was put together by the GNU Libc Maintainers <debian-glibc@lists.debian.org>
from <https://sourceware.org/git/glibc.git>

* Most of the GNU C library is under the following copyright:

    Copyright (C) 1991-2022 Free Software Foundation, Inc.

    The GNU C Library is free software; you can redistribute it and/or
    modify it under the terms of the GNU Lesser General Public
    License as published by the Free Software Foundation; either
    version 2.1 of the License, or (at your option) any later version.

    The GNU C Library is distributed in the hope that it will be useful,
    but WITHOUT ANY WARRANTY; without even the implied warranty of
    MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the GNU
    Lesser General Public License for more details.

  On Debian systems, the complete text of the GNU Library
  General Public License can be found in `/usr/share/common-licenses/LGPL-2.1'.

* The utilities associated with GNU C library is under the following
  copyright:

    This program is free software; you can redistribute it and/or modify
    it under the terms of the GNU General Public License as published
    by the Free Software Foundation; version 2 of the License, or
    (at your option) any later version.

    You should have received a copy of the GNU General Public License
    along with this program; if not, write to the Free Software Foundation,
    Inc., 51 Franklin St, Fifth Floor, Boston, MA 02110-1301 USA.

  On Debian systems, the complete text of the GNU Library
  General Public License can be found in `/usr/share/common-licenses/GPL-2'.

* All code incorporated from 4.4 BSD is distributed under the following
  license:

   Redistribution and use in source and binary forms, with or without
   modification, are permitted provided that the following conditions
   are met:
"""

@Suite struct CopyrightTests {
    @Test func machineReadableFile() {
        let info = CopyrightParser.parse(dep5Copyright)
        #expect(info.machineReadable)
        #expect(info.text == dep5Copyright)
        #expect(info.licenses == ["GPL-3+", "BSD-4-clause-UC", "GPL-1+", "Artistic",
                                  "GPL-2+ with OpenSSL exception", "Zlib"])
        #expect(info.files.count == 4)
        #expect(info.files[0] == .init(globs: ["*"], license: "GPL-3+",
                                       copyright: "(C) 1984-2008 Free Software Foundation, Inc."))
        #expect(info.files[1].globs == ["lib/fts.c", "lib/fts_.h"])
        #expect(info.files[1].license == "GPL-3+ and BSD-4-clause-UC")
        #expect(info.files[1].copyright == """
            (C) 2004-2020, 2008 Free Software Foundation, Inc.
            (c) 1989, 1990, 1993, 1994  The Regents of the University of California.  All rights reserved.
            """)
        #expect(info.files[2].license == "GPL-1+ or Artistic")
        #expect(info.files[2].copyright == "Copyright (C) 1998 Richard Braakman\nCopyright (C) 2002 Josip Rodin")
    }

    @Test func formatVariantsAndHeaderLicence() {
        let old = """
        Format-Specification: http://svn.debian.org/wsvn/dep/web/deps/dep5.mdwn?op=file&rev=135
        License: MIT

        Files: *
        Copyright: 2009 A. Person
        License: MIT
        """
        let info = CopyrightParser.parse(old)
        #expect(info.machineReadable)
        #expect(info.licenses == ["MIT"])
        #expect(info.files.map(\.globs) == [["*"]])

        let http = "Format: http://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nCopyright: x\nLicense: Zlib\n"
        #expect(CopyrightParser.parse(http).machineReadable)

        let notAFormat = "Format: something else\n\nFiles: *\nLicense: Zlib\n"
        #expect(!CopyrightParser.parse(notAFormat).machineReadable)
        #expect(CopyrightParser.parse(notAFormat).files.isEmpty)
    }

    @Test func licenceExpressionsSplitIntoNames() {
        #expect(CopyrightParser.licenseNames("GPL-2+ or Artistic") == ["GPL-2+", "Artistic"])
        #expect(CopyrightParser.licenseNames("GPL-2+ or Artistic-2.0, and BSD-3-clause") == ["GPL-2+", "Artistic-2.0", "BSD-3-clause"])
        #expect(CopyrightParser.licenseNames("(LGPL-2.1+ or GPL-2+) and MIT") == ["LGPL-2.1+", "GPL-2+", "MIT"])
        #expect(CopyrightParser.licenseNames("GPL-2+ with OpenSSL exception") == ["GPL-2+ with OpenSSL exception"])
        #expect(CopyrightParser.licenseNames("MPL-1.1 and/or GPL-2+ OR LGPL-2.1+") == ["MPL-1.1", "GPL-2+", "LGPL-2.1+"])
        #expect(CopyrightParser.licenseNames("GPL-2 or GPL-2") == ["GPL-2"])
        #expect(CopyrightParser.licenseNames("  ") == [])
    }

    @Test func freeFormLibcHeuristics() {
        let info = CopyrightParser.parse(freeFormLibc)
        #expect(!info.machineReadable)
        #expect(info.files.isEmpty)
        #expect(info.licenses == ["LGPL-2.1", "GPL-2", "BSD"])
    }

    @Test func freeFormExpat() {
        // debootstrap's copyright file.
        let text = """
        This package was debianized by Anthony Towns <ajt@debian.org> on
        Tue, 30 Jan 2001 10:54:45 +1000.

        Copyright:

        Copyright (c) 2001-2005 Anthony Towns

           Permission is hereby granted, free of charge, to any person obtaining
           a copy of this software and associated documentation files (the
           "Software"), to deal in the Software without restriction.
        """
        let info = CopyrightParser.parse(text)
        #expect(!info.machineReadable)
        #expect(info.licenses == ["Expat"])
    }

    @Test func freeFormGPLWithBareCommonLicencesLink() {
        // base-files: the version is in the licence grant, the common-licenses link is the unversioned GPL.
        let text = """
        The GNU Public Licenses in /usr/share/common-licenses were taken from
        ftp.gnu.org and are copyrighted by the Free Software Foundation, Inc.

        This program is free software; you can redistribute it and/or modify
        it under the terms of the GNU General Public License as published by
        the Free Software Foundation; either version 2 of the License, or
        (at your option) any later version.

        This program is distributed in the hope that it will be useful,
        but WITHOUT ANY WARRANTY; without even the implied warranty of
        MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.  See the
        GNU General Public License for more details.

        On Debian systems, the complete text of the GNU General
        Public License can be found in `/usr/share/common-licenses/GPL'.
        """
        #expect(CopyrightParser.parse(text).licenses == ["GPL-2"])
    }

    @Test func heuristicsSmallCases() {
        #expect(CopyrightParser.heuristicLicenses("Licensed under version 3 of the GNU General Public License.") == ["GPL-3"])
        #expect(CopyrightParser.heuristicLicenses("Distributed under the GNU General Public License.") == ["GPL"])
        #expect(CopyrightParser.heuristicLicenses("Licensed under the Apache License, Version 2.0 (the \"License\")") == ["Apache-2.0"])
        #expect(CopyrightParser.heuristicLicenses("""
            This software is provided 'as-is', without any express or implied
            warranty.  In no event will the authors be held liable.
            """) == ["Zlib"])
        #expect(CopyrightParser.heuristicLicenses("The author places this work in the Public Domain.") == ["public-domain"])
        #expect(CopyrightParser.heuristicLicenses("GNU Affero General Public License, version 3.0") == ["AGPL-3"])
        #expect(CopyrightParser.heuristicLicenses("No licence statement at all.") == [])
        // ELBE's own heuristic: License: lines in an otherwise free-form file.
        #expect(CopyrightParser.heuristicLicenses("Upstream: x\nLicense: GPL-2+ or BSD-3-clause\n") == ["GPL-2+", "BSD-3-clause"])
        #expect(CopyrightParser.heuristicLicenses("License: GPL-2+ with OpenSSL exception\n") == ["GPL-2+ with OpenSSL exception"])
        // ...but not when the line is prose (python's free-form copyright file has such lines).
        #expect(CopyrightParser.heuristicLicenses("License: Redistribution and use in source and binary forms, with or\n") == ["BSD"])
        // gcc: the runtime exception's version is not a GPL version.
        #expect(CopyrightParser.heuristicLicenses("""
            GCC is free software; you can redistribute it under the terms of the GNU General Public License
            and the GCC Runtime Library Exception, version 3.1 as published by the Free Software Foundation.
            """) == ["GPL"])
        #expect(CopyrightParser.heuristicLicenses("""
            under the GNU General Public License as published by the Free Software Foundation; either version 3,
            or (at your option) any later version, with the GCC Runtime Library Exception, version 3.1.
            """) == ["GPL-3"])
    }
}
