// Images owns disk images made from plain files: partition tables, filesystems filled from a tree, blobs.
public enum ImagesModule {}
