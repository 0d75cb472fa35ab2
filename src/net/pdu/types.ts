/**
 * The seven DICOM Upper Layer PDUs (PS3.8 §9.3) as a discriminated union on `type`, with the standard's names.
 * Pure data: the wire format lives in `codec.ts`, the chunk accumulator in `framer.ts`.
 *
 * Strings on the wire are ISO 646 (ASCII). AE titles are 16 bytes space-padded on the wire and trimmed here;
 * UIDs are unpadded on the wire (PS3.8 Annex F) and given here without padding.
 * Buffers in decoded PDUs are views into the bytes that were decoded (no copies): do not mutate those bytes.
 */

/** PS3.8 §9.3.2.2: one proposed presentation context (item 20H). `id` is odd, 1..255. */
export interface PresentationContextRq {
  id: number;
  abstractSyntax: string;
  transferSyntaxes: string[];
}

/** PS3.8 §9.3.3.2 Table 9-18 Result/Reason values of a presentation context in an A-ASSOCIATE-AC. */
export const PRESENTATION_CONTEXT_RESULTS = {
  acceptance: 0,
  'user-rejection': 1,
  'no-reason': 2, // provider rejection
  'abstract-syntax-not-supported': 3, // provider rejection
  'transfer-syntaxes-not-supported': 4, // provider rejection
} as const;
export type PresentationContextResult = (typeof PRESENTATION_CONTEXT_RESULTS)[keyof typeof PRESENTATION_CONTEXT_RESULTS];

/**
 * PS3.8 §9.3.3.2: one presentation context answered (item 21H). `transferSyntax` is significant only when `result`
 * is 0 (acceptance); for a rejected context it may be absent (an empty Transfer Syntax Sub-Item is then sent).
 */
export interface PresentationContextAc {
  id: number;
  result: PresentationContextResult;
  transferSyntax?: string;
}

/** PS3.7 §D.3.3.4: SCP/SCU Role Selection Sub-Item (54H). */
export interface RoleSelection {
  sopClassUid: string;
  scuRole: boolean;
  scpRole: boolean;
}

/** PS3.7 §D.3.3.5: SOP Class Extended Negotiation Sub-Item (56H); `info` is the service-class-application-information. */
export interface SopClassExtendedNegotiation {
  sopClassUid: string;
  info: Buffer;
}

/** PS3.7 §D.3.3.6: SOP Class Common Extended Negotiation Sub-Item (57H, sub-item version 0). */
export interface SopClassCommonExtendedNegotiation {
  sopClassUid: string;
  serviceClassUid: string;
  relatedGeneralSopClassUids: string[];
}

/** PS3.7 §D.3.3.7.1 User-Identity-Type values. */
export const USER_IDENTITY_TYPES = {
  username: 1,
  'username-and-passcode': 2,
  'kerberos-service-ticket': 3,
  'saml-assertion': 4,
  'json-web-token': 5,
} as const;
export type UserIdentityType = (typeof USER_IDENTITY_TYPES)[keyof typeof USER_IDENTITY_TYPES];

/** PS3.7 §D.3.3.7.1: User Identity Sub-Item in the A-ASSOCIATE-RQ (58H). `secondaryField` is empty unless type 2. */
export interface UserIdentityRq {
  identityType: UserIdentityType;
  positiveResponseRequested: boolean;
  primaryField: Buffer;
  secondaryField: Buffer;
}

/** PS3.7 §D.3.3.7.2: User Identity Sub-Item in the A-ASSOCIATE-AC (59H). */
export interface UserIdentityAc {
  serverResponse: Buffer;
}

/** PS3.7 §D.3.3.3: Asynchronous Operations Window Sub-Item (53H); 0 means unlimited. */
export interface AsyncOpsWindow {
  maxOperationsInvoked: number;
  maxOperationsPerformed: number;
}

/** PS3.8 §9.3.2.3 / PS3.7 Annex D: the User Information Item (50H) and its sub-items. */
export interface UserInformation {
  /** PS3.8 §D.1 Maximum Length Sub-Item (51H): the largest P-DATA-TF variable field the sender accepts; 0 = unlimited. */
  maxPduLength?: number;
  /** PS3.7 §D.3.3.2 Implementation Class UID Sub-Item (52H). */
  implementationClassUid?: string;
  /** PS3.7 §D.3.3.2 Implementation Version Name Sub-Item (55H). */
  implementationVersionName?: string;
  /** PS3.7 §D.3.3.3 Asynchronous Operations Window Sub-Item (53H). */
  asyncOpsWindow?: AsyncOpsWindow;
  /** PS3.7 §D.3.3.4 SCP/SCU Role Selection Sub-Items (54H). */
  roleSelections: RoleSelection[];
  /** PS3.7 §D.3.3.5 SOP Class Extended Negotiation Sub-Items (56H). */
  extendedNegotiations: SopClassExtendedNegotiation[];
  /** PS3.7 §D.3.3.6 SOP Class Common Extended Negotiation Sub-Items (57H). */
  commonExtendedNegotiations: SopClassCommonExtendedNegotiation[];
  /** PS3.7 §D.3.3.7.1 User Identity Sub-Item, A-ASSOCIATE-RQ (58H). */
  userIdentityRq?: UserIdentityRq;
  /** PS3.7 §D.3.3.7.2 User Identity Sub-Item, A-ASSOCIATE-AC (59H). */
  userIdentityAc?: UserIdentityAc;
  /** Sub-items of types this codec does not know: kept (and re-encoded) rather than fatal. */
  unknownItems: { itemType: number; data: Buffer }[];
}

/** PS3.8 §9.3.2: A-ASSOCIATE-RQ (01H). */
export interface AAssociateRq {
  type: 'A-ASSOCIATE-RQ';
  /** Bit 0 set = version 1; a receiver tests only bit 0 (the acceptor rejects otherwise: RJ source 2 reason 2). */
  protocolVersion: number;
  calledAeTitle: string;
  callingAeTitle: string;
  applicationContextName: string;
  presentationContexts: PresentationContextRq[];
  userInformation: UserInformation;
}

/**
 * PS3.8 §9.3.3: A-ASSOCIATE-AC (02H). The AE title fields are reserved in the AC: they are sent with the values
 * received in the RQ and not tested when received (so they are not validated when decoded).
 */
export interface AAssociateAc {
  type: 'A-ASSOCIATE-AC';
  protocolVersion: number;
  calledAeTitle: string;
  callingAeTitle: string;
  applicationContextName: string;
  presentationContexts: PresentationContextAc[];
  userInformation: UserInformation;
}

/** PS3.8 §9.3.4 Table 9-21: A-ASSOCIATE-RJ (03H). `reason` depends on `source`: see ASSOCIATE_RJ_REASONS. */
export interface AAssociateRj {
  type: 'A-ASSOCIATE-RJ';
  /** 1 rejected-permanent, 2 rejected-transient. */
  result: 1 | 2;
  /** 1 service-user, 2 service-provider (ACSE related), 3 service-provider (presentation related). */
  source: 1 | 2 | 3;
  reason: number;
}

/** PS3.8 §9.3.5.1 and Annex E: one Presentation Data Value with its message control header. */
export interface Pdv {
  presentationContextId: number;
  /** Message control header bit 0: 1 = command, 0 = data set. */
  isCommand: boolean;
  /** Message control header bit 1: 1 = last fragment. */
  isLast: boolean;
  data: Buffer;
}

/** PS3.8 §9.3.5: P-DATA-TF (04H), one or more PDVs. */
export interface PDataTf {
  type: 'P-DATA-TF';
  pdvs: Pdv[];
}

/** PS3.8 §9.3.6: A-RELEASE-RQ (05H). */
export interface AReleaseRq {
  type: 'A-RELEASE-RQ';
}

/** PS3.8 §9.3.7: A-RELEASE-RP (06H). */
export interface AReleaseRp {
  type: 'A-RELEASE-RP';
}

/**
 * PS3.8 §9.3.8: A-ABORT (07H). `source` 0 = service user (reason not significant, sent as 0),
 * 2 = service provider (reason from ABORT_REASONS).
 */
export interface AAbort {
  type: 'A-ABORT';
  source: 0 | 2;
  reason: number;
}

export type Pdu = AAssociateRq | AAssociateAc | AAssociateRj | PDataTf | AReleaseRq | AReleaseRp | AAbort;
export type PduType = Pdu['type'];

/** PS3.8 §9.3.1: PDU-type codes. */
export const PDU_TYPE_CODES: Record<PduType, number> = {
  'A-ASSOCIATE-RQ': 0x01,
  'A-ASSOCIATE-AC': 0x02,
  'A-ASSOCIATE-RJ': 0x03,
  'P-DATA-TF': 0x04,
  'A-RELEASE-RQ': 0x05,
  'A-RELEASE-RP': 0x06,
  'A-ABORT': 0x07,
};

/** The inverse of PDU_TYPE_CODES (code -> name); codes not in it are unrecognized PDUs. */
export const PDU_TYPE_NAMES: ReadonlyMap<number, PduType> = new Map(
  (Object.entries(PDU_TYPE_CODES) as [PduType, number][]).map(([name, code]) => [code, name]),
);

/** PS3.7 Annex A.2.1: the DICOM Application Context Name. */
export const DICOM_APPLICATION_CONTEXT = '1.2.840.10008.3.1.1.1';

/** PS3.8 §9.3.8 Table 9-26: A-ABORT sources. */
export const ABORT_SOURCES = { 'service-user': 0, 'service-provider': 2 } as const;

/** PS3.8 §9.3.8 Table 9-26: A-ABORT reasons when the source is the service provider (2). 3 is reserved. */
export const ABORT_REASONS = {
  'reason-not-specified': 0,
  'unrecognized-PDU': 1,
  'unexpected-PDU': 2,
  'unrecognized-PDU-parameter': 4,
  'unexpected-PDU-parameter': 5,
  'invalid-PDU-parameter-value': 6,
} as const;
export type AbortReason = (typeof ABORT_REASONS)[keyof typeof ABORT_REASONS];

/** PS3.8 §9.3.4 Table 9-21: A-ASSOCIATE-RJ reasons, by source. Values not listed are reserved. */
export const ASSOCIATE_RJ_REASONS = {
  /** Source 1: DICOM UL service-user. */
  1: {
    'no-reason-given': 1,
    'application-context-name-not-supported': 2,
    'calling-AE-title-not-recognized': 3,
    'called-AE-title-not-recognized': 7,
  },
  /** Source 2: DICOM UL service-provider (ACSE related function). */
  2: { 'no-reason-given': 1, 'protocol-version-not-supported': 2 },
  /** Source 3: DICOM UL service-provider (Presentation related function). */
  3: { 'temporary-congestion': 1, 'local-limit-exceeded': 2 },
} as const;

/** A User Information with no sub-items, to spread into a literal. */
export function emptyUserInformation(): UserInformation {
  return { roleSelections: [], extendedNegotiations: [], commonExtendedNegotiations: [], unknownItems: [] };
}
