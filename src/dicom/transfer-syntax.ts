/** Transfer syntaxes (PS3.5 §10, PS3.6 Annex A): how a dataset is encoded. */

export interface TransferSyntax {
  uid: string;
  name: string;
  explicitVr: boolean;
  littleEndian: boolean;
  deflated: boolean;
  /** Pixel data in fragments (PS3.5 §A.4). */
  encapsulated: boolean;
  /** Multipart Content-Type of a frame in this syntax (PS3.18 §8.7.3.3.2), for encapsulated syntaxes. */
  frameMediaType?: string;
}

export const ImplicitVRLittleEndian = '1.2.840.10008.1.2';
export const ExplicitVRLittleEndian = '1.2.840.10008.1.2.1';
export const DeflatedExplicitVRLittleEndian = '1.2.840.10008.1.2.1.99';
export const ExplicitVRBigEndian = '1.2.840.10008.1.2.2';

const native = (uid: string, name: string, explicitVr: boolean, littleEndian: boolean, deflated = false): TransferSyntax => ({
  uid,
  name,
  explicitVr,
  littleEndian,
  deflated,
  encapsulated: false,
});
const encap = (uid: string, name: string, frameMediaType: string): TransferSyntax => ({
  uid,
  name,
  explicitVr: true,
  littleEndian: true,
  deflated: false,
  encapsulated: true,
  frameMediaType,
});

const TABLE: TransferSyntax[] = [
  native(ImplicitVRLittleEndian, 'Implicit VR Little Endian', false, true),
  native(ExplicitVRLittleEndian, 'Explicit VR Little Endian', true, true),
  native('1.2.840.10008.1.2.1.98', 'Encapsulated Uncompressed Explicit VR Little Endian', true, true),
  native(DeflatedExplicitVRLittleEndian, 'Deflated Explicit VR Little Endian', true, true, true),
  native(ExplicitVRBigEndian, 'Explicit VR Big Endian', true, false),
  encap('1.2.840.10008.1.2.4.50', 'JPEG Baseline (Process 1)', 'image/jpeg'),
  encap('1.2.840.10008.1.2.4.51', 'JPEG Extended (Process 2 & 4)', 'image/jpeg'),
  encap('1.2.840.10008.1.2.4.57', 'JPEG Lossless, Non-Hierarchical (Process 14)', 'image/jpeg'),
  encap('1.2.840.10008.1.2.4.70', 'JPEG Lossless, Non-Hierarchical, First-Order Prediction', 'image/jpeg'),
  encap('1.2.840.10008.1.2.4.80', 'JPEG-LS Lossless', 'image/jls'),
  encap('1.2.840.10008.1.2.4.81', 'JPEG-LS Lossy (Near-Lossless)', 'image/jls'),
  encap('1.2.840.10008.1.2.4.90', 'JPEG 2000 Image Compression (Lossless Only)', 'image/jp2'),
  encap('1.2.840.10008.1.2.4.91', 'JPEG 2000 Image Compression', 'image/jp2'),
  encap('1.2.840.10008.1.2.4.92', 'JPEG 2000 Part 2 Multi-component (Lossless Only)', 'image/jpx'),
  encap('1.2.840.10008.1.2.4.93', 'JPEG 2000 Part 2 Multi-component', 'image/jpx'),
  encap('1.2.840.10008.1.2.4.100', 'MPEG2 Main Profile / Main Level', 'video/mpeg'),
  encap('1.2.840.10008.1.2.4.101', 'MPEG2 Main Profile / High Level', 'video/mpeg'),
  encap('1.2.840.10008.1.2.4.102', 'MPEG-4 AVC/H.264 High Profile / Level 4.1', 'video/mp4'),
  encap('1.2.840.10008.1.2.4.103', 'MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1', 'video/mp4'),
  encap('1.2.840.10008.1.2.4.104', 'MPEG-4 AVC/H.264 High Profile / Level 4.2 For 2D Video', 'video/mp4'),
  encap('1.2.840.10008.1.2.4.105', 'MPEG-4 AVC/H.264 High Profile / Level 4.2 For 3D Video', 'video/mp4'),
  encap('1.2.840.10008.1.2.4.106', 'MPEG-4 AVC/H.264 Stereo High Profile / Level 4.2', 'video/mp4'),
  encap('1.2.840.10008.1.2.4.107', 'HEVC/H.265 Main Profile / Level 5.1', 'video/H265'),
  encap('1.2.840.10008.1.2.4.108', 'HEVC/H.265 Main 10 Profile / Level 5.1', 'video/H265'),
  encap('1.2.840.10008.1.2.4.201', 'High-Throughput JPEG 2000 (Lossless Only)', 'image/jphc'),
  encap('1.2.840.10008.1.2.4.202', 'High-Throughput JPEG 2000 with RPCL Options (Lossless Only)', 'image/jphc'),
  encap('1.2.840.10008.1.2.4.203', 'High-Throughput JPEG 2000', 'image/jphc'),
  encap('1.2.840.10008.1.2.5', 'RLE Lossless', 'image/dicom-rle'),
];

const BY_UID = new Map(TABLE.map((t) => [t.uid, t]));

/** Known transfer syntaxes; unknown UIDs are treated as encapsulated explicit little endian (PS3.5 §10.1). */
export function transferSyntax(uid: string): TransferSyntax {
  return (
    BY_UID.get(uid) ?? {
      uid,
      name: 'Unknown',
      explicitVr: true,
      littleEndian: true,
      deflated: false,
      encapsulated: true,
      frameMediaType: 'application/octet-stream',
    }
  );
}

export function isKnownTransferSyntax(uid: string): boolean {
  return BY_UID.has(uid);
}

export const ALL_TRANSFER_SYNTAXES: readonly TransferSyntax[] = TABLE;
